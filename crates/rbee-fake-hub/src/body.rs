//! The body every response is sent through: rate cap, body faults, and byte counting.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, BodyDataStream};
use bytes::{Bytes, BytesMut};
use futures::Stream;
use tokio::time::{Instant, Sleep};

use crate::conn::ConnShared;
use crate::counters::Meter;

/// How long a cut or short end waits for the bytes before it to reach the socket.
const FLUSH_DEADLINE: Duration = Duration::from_secs(5);
/// A stall with `hang` lasts this long, i.e. until the client or a shutdown ends it.
const HANG: Duration = Duration::from_secs(365 * 24 * 3600);

/// Body faults applied to one response.
#[derive(Debug, Default, Clone)]
pub(crate) struct BodyPlan {
    /// Cut after this many body bytes (and reset instead of close).
    pub(crate) drop_at: Option<(u64, bool)>,
    /// After this many body bytes, pause (`None`: forever).
    pub(crate) stall: Option<(u64, Option<Duration>)>,
    /// Body offset of a byte to corrupt.
    pub(crate) flip_at: Option<u64>,
    /// The announced length is longer than the body: close after the last byte.
    pub(crate) short: bool,
    /// Bytes of filler sent after the body (`u64::MAX`: without end).
    pub(crate) trailing: Option<u64>,
}

/// The filler of a body longer than its file.
static FILLER: [u8; 64 * 1024] = [0x5a; 64 * 1024];

#[derive(Debug, Clone, Copy)]
enum Terminal {
    Abort { reset: bool },
    End,
}

/// Wraps a response body. Counts a chunk when it is handed to the connection; if the response
/// does not complete, takes back what the socket never accepted (measured on the connection).
pub(crate) struct ShapedStream {
    inner: BodyDataStream,
    pending: Option<Bytes>,
    inner_done: bool,
    plan: BodyPlan,
    rate: Arc<AtomicU64>,
    meter: Meter,
    conn: Arc<ConnShared>,
    /// Size of the response head, which the connection writes before the body.
    head_len: u64,
    /// The announced body length: once it is all handed over, the connection ends the
    /// response without asking for more, so that is completion.
    announced: Option<u64>,
    /// Connection bytes written before this body's head.
    wire_start: Option<u64>,
    yielded: u64,
    /// Rate accounting restarts when the rate changes: (since, bytes at that time, rate).
    rate_anchor: Option<(Instant, u64, u64)>,
    sleep: Option<Pin<Box<Sleep>>>,
    stalled: bool,
    terminal: Option<(Terminal, Instant)>,
    finished: bool,
    completed: bool,
}

impl ShapedStream {
    pub(crate) fn new(
        body: Body,
        plan: BodyPlan,
        rate: Arc<AtomicU64>,
        meter: Meter,
        conn: Arc<ConnShared>,
        head_len: u64,
        announced: Option<u64>,
    ) -> Self {
        Self {
            inner: body.into_data_stream(),
            pending: None,
            inner_done: false,
            plan,
            rate,
            meter,
            conn,
            head_len,
            announced,
            wire_start: None,
            yielded: 0,
            rate_anchor: None,
            sleep: None,
            stalled: false,
            terminal: None,
            finished: false,
            completed: false,
        }
    }

    /// Body bytes the socket has accepted.
    fn flushed(&self) -> u64 {
        let Some(start) = self.wire_start else {
            return 0;
        };
        let on_wire = self.conn.written().saturating_sub(start);
        on_wire.saturating_sub(self.head_len).min(self.yielded)
    }

    fn sleep_until(&mut self, at: Instant) {
        self.sleep = Some(Box::pin(tokio::time::sleep_until(at)));
    }

    /// Size of one slice under a rate cap: about 20 slices a second.
    fn rate_slice(rate: u64) -> u64 {
        (rate / 20).clamp(512, 256 * 1024)
    }
}

impl Stream for ShapedStream {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        if this.wire_start.is_none() {
            this.wire_start = Some(this.conn.written());
        }
        loop {
            if let Some(sleep) = this.sleep.as_mut() {
                ready!(sleep.as_mut().poll(cx));
                this.sleep = None;
            }

            if let Some((terminal, deadline)) = this.terminal {
                // Returning Pending makes the connection flush what it holds; only end once
                // the socket took every byte before the cut, so the client sees exactly them.
                if this.flushed() < this.yielded && Instant::now() < deadline {
                    this.sleep_until(Instant::now() + Duration::from_millis(1));
                    continue;
                }
                this.finished = true;
                return Poll::Ready(match terminal {
                    Terminal::Abort { reset } => {
                        if reset {
                            this.conn.reset_on_close();
                        }
                        Some(Err(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            "fake hub: injected connection drop",
                        )))
                    }
                    Terminal::End => None,
                });
            }

            if let Some((at, reset)) = this.plan.drop_at
                && this.yielded >= at
            {
                this.terminal = Some((Terminal::Abort { reset }, Instant::now() + FLUSH_DEADLINE));
                continue;
            }
            if let Some((at, pause)) = this.plan.stall
                && !this.stalled
                && this.yielded >= at
            {
                this.stalled = true;
                this.sleep_until(Instant::now() + pause.unwrap_or(HANG));
                continue;
            }

            if this.pending.is_none() {
                if this.inner_done
                    && let Some(left) = this.plan.trailing.filter(|&n| n > 0)
                {
                    let n = left.min(FILLER.len() as u64);
                    this.pending = Some(Bytes::from_static(&FILLER[..n as usize]));
                    if left != u64::MAX {
                        this.plan.trailing = Some(left - n);
                    }
                    continue;
                }
                if this.inner_done {
                    if this.plan.short {
                        this.terminal = Some((Terminal::End, Instant::now() + FLUSH_DEADLINE));
                        continue;
                    }
                    this.finished = true;
                    this.completed = true;
                    return Poll::Ready(None);
                }
                match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
                    Some(Ok(chunk)) => {
                        if !chunk.is_empty() {
                            this.pending = Some(chunk);
                        }
                    }
                    Some(Err(e)) => {
                        this.finished = true;
                        return Poll::Ready(Some(Err(io::Error::other(e))));
                    }
                    None => this.inner_done = true,
                }
                continue;
            }

            let available = this.pending.as_ref().map_or(0, |b| b.len() as u64);
            let mut limit = available;
            let rate = this.conn.rate(this.rate.load(Ordering::Relaxed));
            if rate > 0 {
                let now = Instant::now();
                let anchor = match this.rate_anchor {
                    Some(a) if a.2 == rate => a,
                    _ => {
                        let a = (now, this.yielded, rate);
                        this.rate_anchor = Some(a);
                        a
                    }
                };
                let due = anchor.0
                    + Duration::from_secs_f64((this.yielded - anchor.1) as f64 / rate as f64);
                if due > now {
                    this.sleep_until(due);
                    continue;
                }
                limit = limit.min(Self::rate_slice(rate));
            } else {
                this.rate_anchor = None;
            }
            if let Some((at, _)) = this.plan.drop_at {
                limit = limit.min(at - this.yielded);
            }
            if let Some((at, _)) = this.plan.stall
                && !this.stalled
            {
                limit = limit.min(at - this.yielded);
            }

            let Some(mut rest) = this.pending.take() else {
                continue;
            };
            let mut chunk = if limit < available {
                let head = rest.split_to(limit as usize);
                this.pending = Some(rest);
                head
            } else {
                rest
            };
            if let Some(flip) = this.plan.flip_at
                && (this.yielded..this.yielded + limit).contains(&flip)
            {
                let mut copy = BytesMut::from(&chunk[..]);
                copy[(flip - this.yielded) as usize] ^= 0xFF;
                chunk = copy.freeze();
            }
            this.yielded += limit;
            this.meter.add_bytes(limit);
            if this.announced.is_some_and(|n| this.yielded >= n) {
                this.completed = true;
            }
            return Poll::Ready(Some(Ok(chunk)));
        }
    }
}

impl Drop for ShapedStream {
    fn drop(&mut self) {
        if !self.completed {
            let unsent = self.yielded - self.flushed();
            if unsent > 0 {
                self.meter.sub_bytes(unsent);
            }
        }
    }
}
