use super::*;
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

type Source = StreamBody<ReceiverStream<Result<Frame<Bytes>, std::io::Error>>>;

fn source() -> (mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>, Source) {
    let (tx, rx) = mpsc::channel(16);
    (tx, StreamBody::new(ReceiverStream::new(rx)))
}

fn data(s: &'static str) -> Result<Frame<Bytes>, std::io::Error> {
    Ok(Frame::data(Bytes::from_static(s.as_bytes())))
}

async fn read_all(body: ReplayBody<Source>) -> Result<(String, Option<HeaderMap>), ReplayError> {
    let collected = body.collect().await?;
    let trailers = collected.trailers().cloned();
    Ok((
        String::from_utf8(collected.to_bytes().to_vec()).unwrap(),
        trailers,
    ))
}

#[tokio::test]
async fn a_replay_after_the_first_read_sends_the_same_body_and_trailers() {
    let (tx, src) = source();
    let first = ReplayBody::new(src, 1024);
    let second = first.replay().unwrap();
    tx.send(data("hello ")).await.unwrap();
    tx.send(data("world")).await.unwrap();
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    tx.send(Ok(Frame::trailers(trailers.clone())))
        .await
        .unwrap();
    drop(tx);
    assert_eq!(
        read_all(first).await.unwrap(),
        ("hello world".into(), Some(trailers.clone()))
    );
    assert_eq!(
        read_all(second).await.unwrap(),
        ("hello world".into(), Some(trailers))
    );
}

#[tokio::test]
async fn two_copies_reading_at_once_both_see_every_frame() {
    let (tx, src) = source();
    let main = ReplayBody::new(src, 1024);
    let mirror = main.replay().unwrap();
    let a = tokio::spawn(read_all(main));
    let b = tokio::spawn(read_all(mirror));
    for chunk in ["a", "b", "c", "d"] {
        tx.send(data(chunk)).await.unwrap();
        tokio::task::yield_now().await;
    }
    drop(tx);
    assert_eq!(a.await.unwrap().unwrap().0, "abcd");
    assert_eq!(b.await.unwrap().unwrap().0, "abcd");
}

#[tokio::test]
async fn past_the_limit_the_leader_goes_on_and_replays_are_refused() {
    let (tx, src) = source();
    let leader = ReplayBody::new(src, 4);
    let behind = leader.replay().unwrap();
    tx.send(data("abc")).await.unwrap();
    tx.send(data("defgh")).await.unwrap();
    drop(tx);
    assert_eq!(
        read_all(leader.replay().unwrap()).await.unwrap().0,
        "abcdefgh"
    );
    assert_eq!(leader.replay().err(), Some(ReplayError::Overflow(4)));
    assert!(!leader.is_replayable());
    assert_eq!(read_all(behind).await.err(), Some(ReplayError::Overflow(4)));
}

#[tokio::test]
async fn a_copy_catches_up_and_reads_on_after_the_leader_is_dropped() {
    let (tx, src) = source();
    let leader = ReplayBody::new(src, 1024);
    let follower = leader.replay().unwrap();
    let mut leader = leader;
    tx.send(data("x")).await.unwrap();
    // The leader pulls "x" and then waits on the source.
    let frame = leader.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "x");
    let reader = tokio::spawn(read_all(follower));
    tokio::task::yield_now().await;
    drop(leader);
    tx.send(data("y")).await.unwrap();
    drop(tx);
    assert_eq!(reader.await.unwrap().unwrap().0, "xy");
}

#[tokio::test]
async fn a_source_error_reaches_every_copy() {
    let (tx, src) = source();
    let first = ReplayBody::new(src, 1024);
    let second = first.replay().unwrap();
    tx.send(Err(std::io::Error::other("client went away")))
        .await
        .unwrap();
    assert!(matches!(read_all(first).await, Err(ReplayError::Source(_))));
    assert!(matches!(
        read_all(second).await,
        Err(ReplayError::Source(_))
    ));
}

/// A body whose end is known with its last data frame, as an HTTP/2 DATA frame carrying
/// END_STREAM, and (optionally) trailers after it.
struct KnownEnd {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for KnownEnd {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        let frame = match this.data.take() {
            Some(d) => Frame::data(d),
            None => match this.trailers.take() {
                Some(t) => Frame::trailers(t),
                None => return Poll::Ready(None),
            },
        };
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}

async fn next_frame<B>(body: &mut ReplayBody<B>) -> Frame<Bytes>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    body.frame().await.unwrap().unwrap()
}

#[tokio::test]
async fn a_copy_ends_with_the_last_data_frame_of_a_source_that_has_ended() {
    let source = KnownEnd {
        data: Some(Bytes::from_static(b"\0\0\0\0\0")),
        trailers: None,
    };
    let mut first = ReplayBody::new(source, 1024);
    let mut second = first.replay().unwrap();
    assert!(!first.is_end_stream());
    assert!(next_frame(&mut first).await.is_data());
    // Known now, so the sender can put END_STREAM on the frame just read.
    assert!(first.is_end_stream());
    assert!(!second.is_end_stream());
    assert!(next_frame(&mut second).await.is_data());
    assert!(second.is_end_stream());
    assert!(first.frame().await.is_none());
}

#[tokio::test]
async fn a_copy_whose_source_has_trailers_to_come_does_not_end_with_the_data() {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", "1".parse().unwrap());
    let source = KnownEnd {
        data: Some(Bytes::from_static(b"body")),
        trailers: Some(trailers.clone()),
    };
    let mut body = ReplayBody::new(source, 1024);
    assert!(next_frame(&mut body).await.is_data());
    assert!(!body.is_end_stream());
    assert_eq!(next_frame(&mut body).await.trailers_ref(), Some(&trailers));
    assert!(body.is_end_stream());
}
