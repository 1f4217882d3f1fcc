//! # The one host between the core and its shells
//!
//! # Overview
//!
//! Shoal's core [`Node`] is a sans-IO state machine: it is fed [`Input`]s and drained of
//! [`Output`]s. Something must own the queue of inputs, feed them one at a time and drain the
//! node after each (the drain contract of [`shoal_core::node`]), keep the timers the node asks
//! for, and carry out the node's storage commands against a store. That something is the same
//! in every shell — the browser page, the native relay and the simulator — so it lives here,
//! once. A shell supplies only its I/O:
//!
//! - its **transport**, as an [`Io`]: what to do with a message to send, a peer to dial and an
//!   event for the front end;
//! - its **clock**: the `now_ms` passed to [`Host::drain`] and [`Host::handle_timeout`];
//! - its **store**, as a [`BlockStore`]: IndexedDB in the page, redb in the relay, the
//!   simulator's faulty memory.
//!
//! The host keeps no timer table a shell has to run: [`Host::poll_timeout`] is the one
//! deadline at which the shell calls [`Host::handle_timeout`], in the manner of quinn-proto's
//! `poll_timeout` / `handle_timeout` and str0m's `Output::Timeout`.
//!
//! # Usage
//!
//! A shell with an asynchronous store (the page, the relay) hands every event to the host and
//! lets [`Host::run`] pump until the node is quiet, running the storage commands of each round
//! in one batch:
//!
//! ```
//! # use shoal_core::node::{Config, Input, Node, NodeId, Output};
//! # use shoal_host::{Host, Inputs, Io, MemoryStore};
//! struct Transport(Vec<Output>);
//! impl Io for Transport {
//!     fn carry_out(&mut self, output: Output, _inputs: &mut Inputs) {
//!         self.0.push(output); // a real shell sends, dials or tells the front end
//!     }
//! }
//! let node = Node::new(Config::default(), NodeId::from_seed(1), 42).unwrap();
//! let mut host = Host::new(node);
//! let (mut store, mut io) = (MemoryStore::default(), Transport(Vec::new()));
//! let mut now_ms = 0;
//! host.push(Input::Start);
//! futures::executor::block_on(host.run(now_ms, &mut store, &mut io));
//! // The node asked for a timer: wake it when it is due.
//! now_ms = host.poll_timeout().expect("a started node keeps a timer");
//! host.handle_timeout(now_ms);
//! futures::executor::block_on(host.run(now_ms, &mut store, &mut io));
//! ```
//!
//! A shell that must place every storage result in time itself (the simulator, whose disk has
//! latency) calls [`Host::drain`] and carries out [`Output::Storage`] in its [`Io`], through
//! the same [`execute`].
#![forbid(unsafe_code)]

mod storage;

pub use storage::{execute, BlockStore, MemoryStore, Write, MAX_COMMANDS_PER_BATCH};

use std::collections::VecDeque;

use shoal_core::node::{Input, Node, Output, StorageCommand, TimerId, Timers};

/// The host's queue of inputs for its node. A shell's [`Io`] may add to it while it carries
/// out an output (a dial that fails at once becomes `Input::PeerDisconnected`); the host feeds
/// those before it returns.
#[derive(Debug, Default)]
pub struct Inputs(VecDeque<Input>);

impl Inputs {
    /// Queues `input` behind everything already queued.
    pub fn push(&mut self, input: Input) {
        self.0.push_back(input);
    }

    /// How many inputs wait.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a shell does with the node's outputs that are not the host's own business (timers
/// are): a message to send, a peer to dial, an event for the front end — and, for a shell
/// that calls [`Host::drain`] itself, a storage command.
pub trait Io {
    /// Carries out `output`. Anything that follows from it at once goes into `inputs`.
    fn carry_out(&mut self, output: Output, inputs: &mut Inputs);

    /// A storage command of [`Host::run`] finished with `result` (for a shell that keeps
    /// figures beside the node, such as the bytes stored). The default does nothing.
    fn stored(&mut self, command: &StorageCommand, result: &shoal_core::node::StorageResult) {
        let _ = (command, result);
    }
}

/// Most inputs fed in one [`Host::drain`]: the node's outputs are bounded and every input it
/// causes is an answer to one of them, so a drain that runs this long is a bug.
pub const MAX_INPUTS_PER_DRAIN: u32 = 1_000_000;

/// A core node with its input queue, its timers and its storage pump.
#[derive(Debug)]
pub struct Host {
    node: Node,
    inputs: Inputs,
    timers: Timers,
}

impl Host {
    /// A host for `node`. Nothing is queued: a shell pushes `Input::Start` (after anything
    /// the node must know first, such as the header chain).
    pub fn new(node: Node) -> Host {
        Host {
            node,
            inputs: Inputs::default(),
            timers: Timers::default(),
        }
    }

    /// The node, to read its state.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The node, to call what the core offers beside inputs (`Node::with_block`).
    pub fn node_mut(&mut self) -> &mut Node {
        &mut self.node
    }

    /// Queues `input` for the next [`Host::drain`] or [`Host::run`].
    pub fn push(&mut self, input: Input) {
        self.inputs.push(input);
    }

    /// Whether inputs wait to be fed.
    pub fn has_inputs(&self) -> bool {
        !self.inputs.is_empty()
    }

    /// The earliest time, on the shell's clock in milliseconds, at which the host must be
    /// woken with [`Host::handle_timeout`]; `None` while no timer is set.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.next_ms()
    }

    /// Queues every timer due at `now_ms` (feed them with [`Host::drain`] or [`Host::run`]).
    /// Calling it early, late or twice is harmless.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        for id in self.timers.take_due(now_ms) {
            self.inputs.push(Input::TimerFired(id));
        }
    }

    /// The pending deadline of one timer (for tests and status).
    pub fn timer(&self, id: TimerId) -> Option<u64> {
        self.timers.get(id)
    }

    /// Feeds every queued input, draining the node after each: timers are kept here, every
    /// other output goes to `io` in the order the node gave it (storage commands too). Inputs
    /// `io` queues meanwhile are fed before this returns.
    pub fn drain(&mut self, now_ms: u64, io: &mut impl Io) {
        let mut fed = 0u32;
        while let Some(input) = self.inputs.0.pop_front() {
            fed += 1;
            assert!(
                fed < MAX_INPUTS_PER_DRAIN,
                "the node keeps asking for more: {fed} inputs in one drain"
            );
            self.node.handle_input(now_ms, input);
            while let Some(output) = self.node.poll_output() {
                match output {
                    Output::SetTimer { id, at_ms } => self.timers.set(id, at_ms),
                    other => io.carry_out(other, &mut self.inputs),
                }
            }
        }
    }

    /// Pumps until the node is quiet: drains every queued input, carries out the storage
    /// commands of that round on `store` in one batch (at most [`MAX_COMMANDS_PER_BATCH`] a
    /// call), feeds their results back, and again, until no input waits. Everything else
    /// goes to `io`. Returns the last storage error, for the shell to surface (the node was
    /// told of the failure through the results).
    pub async fn run<S: BlockStore>(
        &mut self,
        now_ms: u64,
        store: &mut S,
        io: &mut impl Io,
    ) -> Option<S::Error> {
        let mut last_error = None;
        loop {
            let mut round = Batching {
                io: &mut *io,
                commands: Vec::new(),
            };
            self.drain(now_ms, &mut round);
            let commands = round.commands;
            if commands.is_empty() {
                return last_error;
            }
            for chunk in commands.chunks(MAX_COMMANDS_PER_BATCH) {
                let (results, error) = execute(store, chunk).await;
                if error.is_some() {
                    last_error = error;
                }
                for (command, result) in chunk.iter().zip(results) {
                    io.stored(command, &result);
                    self.inputs.push(Input::Storage(result));
                }
            }
        }
    }
}

/// [`Host::run`]'s view of the shell's [`Io`]: storage commands are kept for the round's
/// batch, everything else passes through.
struct Batching<'a, I: Io> {
    io: &'a mut I,
    commands: Vec<StorageCommand>,
}

impl<I: Io> Io for Batching<'_, I> {
    fn carry_out(&mut self, output: Output, inputs: &mut Inputs) {
        match output {
            Output::Storage(command) => self.commands.push(command),
            other => self.io.carry_out(other, inputs),
        }
    }
}

#[cfg(test)]
mod tests;
