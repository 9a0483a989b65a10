//! What the ADS server serves: a published configuration and the generator of each proxy's
//! resources. The resources themselves are `xds_protos::snapshot`'s.

pub use xds_protos::snapshot::{content_version, NamedResources, Resources, VersionedResource};

use std::sync::Arc;
use std::time::Instant;
use xds_protos::node::NodeIdentity;

/// Produces the resources of one proxy from a config snapshot (translate implements it).
pub trait ResourceGenerator: Send + Sync + 'static {
    fn generate(&self, node: &NodeIdentity) -> Resources;
}

/// A published configuration: what every connected proxy converges to.
pub struct ConfigVersion {
    /// Shown to proxies as `version_info`, and in `/debug/syncz`.
    pub version: String,
    pub published: Instant,
    pub generator: Arc<dyn ResourceGenerator>,
}

impl ConfigVersion {
    pub fn new(version: impl Into<String>, generator: Arc<dyn ResourceGenerator>) -> Self {
        ConfigVersion {
            version: version.into(),
            published: Instant::now(),
            generator,
        }
    }
}
