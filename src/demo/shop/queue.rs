//! The `notifications` queue (in process, unbounded, FIFO) and its
//! consumer, the notifier, which emails each confirmation through the email
//! provider and puts a message back at the end of the queue when that fails
//! (hidden failures 2 and 3).

use std::collections::VecDeque;
use std::sync::Arc;

use opentelemetry::trace::{Link, SpanContext, SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::{watch, Notify};

use super::client::{Call, Svc};
use super::config::Dependency;
use super::stats::Counters;
use super::telemetry::fail;
use super::{DESTINATION, MESSAGING_SYSTEM};

/// One order confirmation.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub order_id: u64,
    /// The ordering key (`messaging.kafka.message.key`).
    pub customer: String,
    /// The producer's span, carried the way a header would carry it.
    pub producer: SpanContext,
    /// Deliveries so far.
    pub deliveries: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Queue {
    items: Mutex<VecDeque<Message>>,
    ready: Notify,
}

impl Queue {
    /// Appends `message`, running `sent` under the queue's lock first (the
    /// producer ends its span there, so queue order is production order).
    pub fn publish(&self, message: Message, sent: impl FnOnce()) {
        let mut items = self.items.lock();
        sent();
        items.push_back(message);
        drop(items);
        self.ready.notify_one();
    }

    /// Puts a message back at the end.
    fn requeue(&self, message: Message) {
        self.publish(message, || {});
    }

    pub fn depth(&self) -> usize {
        self.items.lock().len()
    }

    /// Up to `n` messages from the front, without waiting.
    fn take(&self, n: usize) -> Vec<Message> {
        let mut items = self.items.lock();
        let n = n.min(items.len());
        items.drain(..n).collect()
    }

    /// The next message, waiting for one. (`notify_one` keeps a permit when
    /// nobody waits, so a publish between the check and the wait is not lost.)
    async fn next(&self) -> Message {
        loop {
            if let Some(m) = self.items.lock().pop_front() {
                return m;
            }
            self.ready.notified().await;
        }
    }
}

/// A backlog at which the notifier starts catching up.
const BACKLOG: usize = 20;
/// Deliveries at a time while catching up.
const CATCH_UP: usize = 4;

/// The notifier: one message at a time until `stop` turns true; behind a
/// backlog it delivers [`CATCH_UP`] at a time, as consumers scaled on lag
/// do, so the queue drains well ahead of the traffic once the provider is
/// healthy again (and a customer's confirmations may overtake each other).
pub(crate) async fn notifier(svc: Svc, queue: Arc<Queue>, mut stop: watch::Receiver<bool>) {
    loop {
        let message = tokio::select! {
            m = queue.next() => m,
            _ = stop.wait_for(|s| *s) => return,
        };
        let mut batch = vec![message];
        if queue.depth() >= BACKLOG {
            batch.extend(queue.take(CATCH_UP - 1));
        }
        let deliveries = batch.into_iter().map(|m| deliver(&svc, &queue, m));
        futures_util::future::join_all(deliveries).await;
    }
}

/// One delivery: a CONSUMER span (child of the producer's span and linked to
/// it) around the email call. A failed or timed-out call sends the message
/// to the back of the queue, behind later messages of the same customer.
async fn deliver(svc: &Svc, queue: &Queue, mut message: Message) {
    message.deliveries += 1;
    Counters::bump(&svc.counters.deliveries);
    let parent = Context::new().with_remote_span_context(message.producer.clone());
    let attributes = vec![
        KeyValue::new("messaging.system", MESSAGING_SYSTEM),
        KeyValue::new("messaging.destination.name", DESTINATION),
        KeyValue::new("messaging.operation.type", "process"),
        KeyValue::new("messaging.kafka.message.key", message.customer.clone()),
        KeyValue::new("messaging.message.id", message.order_id.to_string()),
        KeyValue::new("memq.delivery", i64::from(message.deliveries)),
    ];
    let links = vec![Link::with_context(message.producer.clone())];
    let cx = svc.instr.start(
        &parent,
        "process notifications",
        SpanKind::Consumer,
        attributes,
        links,
    );
    let body = json!({ "order_id": message.order_id, "to": message.customer });
    let call = Call {
        dep: Dependency::EmailProvider,
        name: "POST /send",
        path: "/send",
        body: &body,
        timeout: svc.cfg.email_timeout,
        resend: None,
    };
    match svc.call(&cx, call).await {
        Ok(_) => Counters::bump(&svc.counters.delivered),
        Err(e) => {
            fail(&cx, "email_failed".into(), e.to_string());
            retry_later(svc, queue, message);
        }
    }
    cx.span().end();
}

fn retry_later(svc: &Svc, queue: &Queue, message: Message) {
    if message.deliveries >= svc.cfg.max_deliveries {
        Counters::bump(&svc.counters.dropped);
        tracing::warn!(order = message.order_id, "notifier: dropped a confirmation");
    } else {
        Counters::bump(&svc.counters.redelivered);
        queue.requeue(message);
    }
}
