//! One direction of one connection: a reader task feeds the pump, which runs
//! the chain of toxics and writes to the other socket.

use std::collections::VecDeque;
use std::io;
use std::net::Shutdown;
use std::sync::Arc;

use bytes::Bytes;
use socket2::SockRef;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::chain::{CloseKind, Ev, Pipeline};
use super::state::Chains;
use super::toxics::Direction;

/// Above this many bytes held by toxics the pump stops reading, so a slow
/// toxic pushes back on the sender through TCP instead of buffering.
const MAX_HELD: usize = 4 << 20;
/// Largest read, as Toxiproxy's (io.Copy's) 32 KB buffer.
const READ_CHUNK: usize = 32 * 1024;

/// What the reader hands the pump, stamped with when it was read.
pub enum Input {
    Data(Bytes, Instant),
    Eof(Instant),
}

/// How a pump ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PumpEnd {
    /// The source closed and the close was passed on.
    Done,
    /// The connection must go (a toxic closed it, or a write failed).
    Close(CloseKind),
}

/// An answer for the client from the upstream pump: bytes, then close?
pub type Reply = (Bytes, bool);

/// Reads `src` until it closes; a read error counts as a close.
pub async fn read_source(src: Arc<TcpStream>, tx: mpsc::Sender<Input>) {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match read_some(&src, &mut buf).await {
            Ok(0) | Err(_) => 0,
            Ok(n) => n,
        };
        let input = if n == 0 {
            Input::Eof(Instant::now())
        } else {
            Input::Data(Bytes::copy_from_slice(&buf[..n]), Instant::now())
        };
        if tx.send(input).await.is_err() || n == 0 {
            return;
        }
    }
}

async fn read_some(s: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        s.readable().await?;
        match s.try_read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

async fn write_all(s: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        s.writable().await?;
        match s.try_write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One direction's pump.
pub struct Pump {
    pub direction: Direction,
    pub dest: Arc<TcpStream>,
    pub input: mpsc::Receiver<Input>,
    pub chains: watch::Receiver<Arc<Chains>>,
    /// Upstream pump: where the HTTP toxic's answers go (to the client).
    pub replies_out: Option<mpsc::Sender<Reply>>,
    /// Downstream pump: answers to write to the client as they come.
    pub replies_in: Option<mpsc::Receiver<Reply>>,
    pub link_seed: u64,
}

impl Pump {
    pub async fn run(mut self) -> PumpEnd {
        let mut pipeline = Pipeline::new(self.link_seed);
        let chain = self.chains.borrow_and_update().clone();
        let mut ready: VecDeque<Ev> = pipeline
            .reconcile(chain.get(self.direction), Instant::now())
            .into();
        let mut input_open = true;
        loop {
            while let Some(ev) = ready.pop_front() {
                if let Some(end) = self.emit(ev).await {
                    return end;
                }
            }
            let next = pipeline.next_at();
            let can_read = input_open && pipeline.held_bytes() < MAX_HELD;
            tokio::select! {
                biased;
                changed = self.chains.changed() => {
                    if changed.is_err() {
                        return PumpEnd::Close(CloseKind::Graceful); // the proxy is gone
                    }
                    let chain = self.chains.borrow_and_update().clone();
                    ready.extend(pipeline.reconcile(chain.get(self.direction), Instant::now()));
                }
                Some((bytes, close)) = recv_reply(&mut self.replies_in) => {
                    ready.push_back(Ev::Reply { bytes, close });
                }
                input = self.input.recv(), if can_read => {
                    let (at, ev) = match input {
                        Some(Input::Data(b, at)) => (at, Ev::Data(b)),
                        Some(Input::Eof(at)) => (at, Ev::Eof),
                        None => (Instant::now(), Ev::Eof),
                    };
                    input_open = ev != Ev::Eof;
                    pipeline.admit(at, ev);
                }
                _ = sleep_until(next), if next.is_some() => {}
            }
            ready.extend(pipeline.advance(Instant::now()));
        }
    }

    /// Passes one event on; `Some` when the pump is over.
    async fn emit(&mut self, ev: Ev) -> Option<PumpEnd> {
        let failed = Some(PumpEnd::Close(CloseKind::Graceful));
        match ev {
            Ev::Data(b) => write_all(&self.dest, &b).await.err().and(failed),
            Ev::Eof => {
                // Half-close: the other direction goes on until its source closes.
                let _ = SockRef::from(&*self.dest).shutdown(Shutdown::Write);
                Some(PumpEnd::Done)
            }
            Ev::Close(kind) => Some(PumpEnd::Close(kind)),
            Ev::Reply { bytes, close } => match &self.replies_out {
                Some(tx) => {
                    let _ = tx.send((bytes, close)).await;
                    None
                }
                None if write_all(&self.dest, &bytes).await.is_err() || close => failed,
                None => None,
            },
        }
    }
}

async fn recv_reply(rx: &mut Option<mpsc::Receiver<Reply>>) -> Option<Reply> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`, waking at least hourly (a stalled toxic's "never").
async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        let cap = Instant::now() + std::time::Duration::from_secs(3600);
        tokio::time::sleep_until(at.min(cap)).await;
    }
}
