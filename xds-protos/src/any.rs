//! Packing and unpacking `google.protobuf.Any`.

use crate::pb::google::protobuf::Any;
use prost::Message;

#[derive(Debug, thiserror::Error)]
pub enum AnyError {
    #[error("expected type {expected}, got {actual}")]
    WrongType {
        expected: &'static str,
        actual: String,
    },
    #[error("cannot decode {type_url}: {source}")]
    Decode {
        type_url: String,
        source: prost::DecodeError,
    },
}

pub fn pack<M: Message>(type_url: &str, msg: &M) -> Any {
    Any {
        type_url: type_url.to_string(),
        value: msg.encode_to_vec(),
    }
}

pub fn unpack<M: Message + Default>(expected: &'static str, any: &Any) -> Result<M, AnyError> {
    if any.type_url != expected {
        return Err(AnyError::WrongType {
            expected,
            actual: any.type_url.clone(),
        });
    }
    M::decode(any.value.as_slice()).map_err(|source| AnyError::Decode {
        type_url: any.type_url.clone(),
        source,
    })
}
