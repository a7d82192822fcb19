//! `SendStream`: many sends over one long-lived stream.
//!
//! A unary `SendMessage` costs the replica an HTTP/2 stream per message:
//! request headers to decode, response headers and trailers to encode, a
//! task, and (measured) two socket writes for every answer. Over a
//! `SendStream` each message is one data frame each way, and answers that
//! are ready together leave in one write.
//!
//! One task per stream reads the requests and keeps up to
//! [`MAX_IN_FLIGHT`] of them in flight at once, so a client can pipeline;
//! concurrent sends share log entries through the batching proposer like
//! concurrent unary calls. Each request is answered exactly once, under its
//! `request_id`, in the order the sends complete. A failed send is answered
//! in-band with the status `SendMessage` would have returned, and the
//! stream stays open. The stream ends when the client closes its side and
//! every answer is out, when the client goes away, or with `UNAVAILABLE`
//! when the replica shuts down (the client retries what is unanswered by
//! request id, so nothing is sent twice).

use std::pin::Pin;
use std::sync::Arc;

use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use crate::api::chat_service::{until_shutdown, ServiceContext};
use crate::api::proto::{self, send_stream_reply};
use crate::state::command::TokenHash;

/// Sends one stream may have in flight; the task stops reading requests
/// while this many are unanswered, which pushes back on the client through
/// HTTP/2 flow control.
pub const MAX_IN_FLIGHT: usize = 1024;

type Item = Result<proto::SendStreamReply, Status>;

/// The answers of one `SendStream` call.
pub type Replies = Pin<Box<dyn Stream<Item = Item> + Send>>;

/// Starts serving `requests` for `session` and returns the answers.
pub fn serve(
    ctx: Arc<ServiceContext>,
    session: TokenHash,
    requests: Streaming<proto::SendMessageRequest>,
) -> Replies {
    let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
    tokio::spawn(async move {
        let _counted = crate::metrics::Live::send_stream();
        if let Err(reason) = pump(&ctx, session, requests, &tx).await {
            tracing::debug!(%reason, "send stream ended");
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

/// Reads requests, runs them concurrently and feeds their answers to `tx`
/// until the client is done or gone, or the replica shuts down.
async fn pump(
    ctx: &ServiceContext,
    session: TokenHash,
    mut requests: Streaming<proto::SendMessageRequest>,
    tx: &mpsc::Sender<Item>,
) -> Result<(), String> {
    let mut shutdown = ctx.shutdown.clone();
    let mut in_flight = FuturesUnordered::new();
    let mut reading = true;
    while reading || !in_flight.is_empty() {
        tokio::select! {
            next = requests.message(), if reading && in_flight.len() < MAX_IN_FLIGHT => {
                match next {
                    Ok(Some(request)) => in_flight.push(answer(ctx, session, request)),
                    Ok(None) => reading = false,
                    Err(status) if status.code() == tonic::Code::InvalidArgument => {
                        // A request that does not decode (see `codec`): the
                        // client is still there, so it gets the answers in
                        // flight, then the reason the stream ends.
                        while let Some(reply) = in_flight.next().await {
                            if tx.send(Ok(reply)).await.is_err() {
                                return Err("the client went away".into());
                            }
                        }
                        let reason = format!("a request did not decode: {status}");
                        let _ = tx.send(Err(status)).await;
                        return Err(reason);
                    }
                    Err(status) => {
                        // The client's side broke; its connection is gone
                        // or going, so nobody would read further answers.
                        return Err(format!("reading requests failed: {status}"));
                    }
                }
            }
            Some(reply) = in_flight.next(), if !in_flight.is_empty() => {
                if tx.send(Ok(reply)).await.is_err() {
                    return Err("the client went away".into());
                }
            }
            () = until_shutdown(&mut shutdown) => {
                let _ = tx.send(Err(Status::unavailable("replica is shutting down"))).await;
                return Err("the replica is shutting down".into());
            }
        }
    }
    // The client closed its side and every answer is out.
    Ok(())
}

/// Sends one message and words the outcome as its answer.
async fn answer(
    ctx: &ServiceContext,
    session: TokenHash,
    request: proto::SendMessageRequest,
) -> proto::SendStreamReply {
    let request_id = request.request_id.clone();
    let result = if request_id.is_empty() {
        Err(Status::invalid_argument(
            "request_id must be set on every SendStream request: it is how the answer is matched",
        ))
    } else {
        ctx.send(session, request).await
    };
    let result = match result {
        Ok(message) => send_stream_reply::Result::Message(message),
        Err(status) => send_stream_reply::Result::Error(proto::SendStreamError {
            code: status.code() as i32,
            message: status.message().to_string(),
        }),
    };
    proto::SendStreamReply {
        request_id,
        result: Some(result),
    }
}
