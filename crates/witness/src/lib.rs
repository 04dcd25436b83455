//! C2SP tlog-witness (<https://c2sp.org/tlog-witness>) with `cosignature/v1` cosignatures
//! (<https://c2sp.org/tlog-cosignature>): both sides of the protocol.
//!
//! - [`protocol`]: the `add-checkpoint` request body, parsed strictly and serialized back. Pure.
//! - [`witness`]: the witness. It checks a log's checkpoint against the last one it cosigned for
//!   that log, advances its SQLite-kept state with a compare-and-swap, and cosigns.
//! - [`http`]: the witness's HTTP edge, `POST /add-checkpoint`, for the caller to nest under its
//!   submission prefix. The only module that reads the clock.
//! - [`client`]: the log's side, a blocking client that submits checkpoints and verifies the
//!   cosignature it gets back, and [`client::cosign`], which learns a witness's state from a
//!   "409 Conflict" and retries once.
//!
//! The checks themselves (signed notes, checkpoints, consistency proofs, cosigning) are
//! `trustlog`'s; this crate decides the order they run in and what each refusal means on the wire.

pub mod client;
pub mod http;
pub mod protocol;
pub mod witness;

pub use client::{cosign, ClientConfigError, ClientError, WitnessClient};
pub use http::router;
pub use protocol::{AddCheckpointRequest, ParseError};
pub use witness::{AddCheckpointError, KnownLog, OpenError, StoreError, Witness};
