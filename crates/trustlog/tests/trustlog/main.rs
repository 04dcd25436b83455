//! The trust log's one integration-test binary: published vectors, property tests against a
//! reference model written straight from RFC 9162's recursive definitions, tiles, notes and
//! receipts.

mod checkpoints;
mod notes;
mod proofs;
mod receipts;
mod reference;
mod tiles;
mod vectors;
