//! `tally verify`: checks the ledger from what is on disk, and names the first broken thing.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use store::{Store, StoreReader};

use crate::progress::Progress;
use crate::DataArgs;

/// How many broken items of one kind are listed.
const FINDINGS_MAX: usize = 10;
/// Transfers handed from the reading thread to the auditing thread at a time.
const CHUNK_TRANSFERS: usize = 4096;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    database: crate::backend::DatabaseArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Check checkpoint signatures with this verifier key (default: the operator's key in
    /// the data directory).
    #[arg(long)]
    vkey: Option<String>,
}

/// One pass over the rows: every account, every transfer (for the balances and its leaf),
/// every registration (for its leaf). Returns the ledger's checks and the leaf hashes placed by
/// leaf number, with the problems found placing them.
fn pass_over_rows(
    reader: &mut dyn StoreReader,
    second_reader: &mut dyn StoreReader,
    id_max: u128,
    log_size: u64,
    tree: &mut TreeBuilder,
    counter: &AtomicU64,
) -> anyhow::Result<(Vec<Check>, Vec<String>)> {
    let mut audit = store::LedgerAudit::new(FINDINGS_MAX);
    reader.visit_accounts(&mut |account| audit.add_account(account))?;
    // Each leaf hash placed at its index (32 bytes a leaf), then the tree grown in order.
    let mut leaves = LeafSlots::new(log_size)?;
    reader.visit_registrations(&mut |stored| {
        leaves.place(stored.leaf_index, &stored.registration.log_leaf(), || {
            format!("registration {}", stored.registration.id)
        });
    })?;
    // The reader decodes rows on this thread while a second thread adds them up, hashes their
    // leaves and grows the tree as the leaves become contiguous: the two halves of the work
    // take about as long as each other.
    let mut contiguous = 0;
    leaves.advance(&mut contiguous);
    let (chunks, received) = std::sync::mpsc::sync_channel::<Vec<store::StoredTransfer>>(4);
    let visited = std::thread::scope(|scope| {
        let consumer = scope.spawn(|| {
            for chunk in received {
                for stored in &chunk {
                    audit.add_transfer(stored);
                    leaves.place(stored.leaf_index, &stored.transfer.log_leaf(), || {
                        format!("transfer {}", stored.transfer.id)
                    });
                }
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                leaves.advance(&mut contiguous);
                tree.append_until(&leaves.hashes, contiguous)?;
            }
            anyhow::Ok(())
        });
        // Two readers decode the two halves of the id range on two threads: reading is the
        // longest part of the pass.
        let id_min = reader.transfer_id_min()?;
        let id_middle = id_min + (id_max.saturating_sub(id_min)) / 2;
        let read =
            |reader: &mut dyn StoreReader,
             ids: std::ops::RangeInclusive<u128>,
             chunks: std::sync::mpsc::SyncSender<Vec<store::StoredTransfer>>| {
                let mut chunk = Vec::with_capacity(CHUNK_TRANSFERS);
                let visited = reader.visit_transfers(ids, &mut |stored| {
                    chunk.push(*stored);
                    if chunk.len() == CHUNK_TRANSFERS {
                        let full =
                            std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_TRANSFERS));
                        // The consumer only stops early by panicking, which the join reports.
                        let _ = chunks.send(full);
                    }
                });
                let _ = chunks.send(chunk);
                visited
            };
        let upper_chunks = chunks.clone();
        let upper = scope.spawn(move || {
            read(
                second_reader,
                id_middle.saturating_add(1)..=u128::MAX,
                upper_chunks,
            )
        });
        let lower = read(reader, 0..=id_middle, chunks);
        let visited = upper
            .join()
            .map_err(|_| anyhow::anyhow!("a reading thread panicked"))?
            .and(lower);
        consumer
            .join()
            .map_err(|_| anyhow::anyhow!("the audit thread panicked"))??;
        anyhow::Ok(visited)
    })?;
    visited?;
    // Leaves after a hole (reported below) are appended now.
    tree.append_until(&leaves.hashes, leaves.hashes.len())?;
    let mut leaves_problems = leaves.problems;
    if let Some(missing) = leaves.filled.iter().position(|slot| !slot) {
        leaves_problems.push(format!("leaf {missing} has no transfer or registration"));
    }
    leaves_problems.truncate(FINDINGS_MAX);
    let ledger_checks = vec![
        Check {
            name: "every transfer names existing accounts of its currency",
            problems: audit
                .transfers_with_bad_accounts()
                .iter()
                .map(|id| format!("transfer {id} names a missing account or another currency"))
                .collect(),
        },
        Check {
            name: "the customer reserve equals what is owed to wallets, merchants and fees",
            problems: audit
                .reserve_mismatches(
                    &[services::accounts::KIND_RESERVE],
                    &services::accounts::KINDS_OWED,
                )
                .iter()
                .map(|(currency, reserve, owed)| {
                    format!("{currency}: the reserve holds {reserve} but {owed} is owed (minor units)")
                })
                .collect(),
        },
        Check {
            name: "every balance equals the sum of its transfers",
            problems: audit
                .balance_mismatches()
                .iter()
                .map(|mismatch| {
                    format!(
                        "account {}: stored (debits pending/posted, credits pending/posted) {:?}, its transfers add up to {:?}",
                        mismatch.account_id, mismatch.stored, mismatch.from_transfers
                    )
                })
                .collect(),
        },
    ];
    Ok((ledger_checks, leaves_problems))
}

/// Leaf hashes placed by leaf number as the rows that claim them arrive, in any order.
struct LeafSlots {
    hashes: Vec<trustlog::Hash>,
    filled: Vec<bool>,
    problems: Vec<String>,
}

impl LeafSlots {
    fn new(log_size: u64) -> anyhow::Result<LeafSlots> {
        let slots =
            usize::try_from(log_size).context("the log is too large to verify in memory")?;
        Ok(LeafSlots {
            hashes: vec![[0; 32]; slots],
            filled: vec![false; slots],
            problems: Vec::new(),
        })
    }

    /// Places the hash of `leaf` at `leaf_index`, or notes why it cannot (`claimant` names
    /// the row, for the message).
    fn place(&mut self, leaf_index: u64, leaf: &[u8], claimant: impl FnOnce() -> String) {
        let size = self.hashes.len();
        let slot = usize::try_from(leaf_index).ok().filter(|slot| *slot < size);
        match slot {
            Some(slot) if !self.filled[slot] => {
                self.filled[slot] = true;
                self.hashes[slot] = trustlog::leaf_hash(leaf);
            }
            Some(_) => self.problems.push(format!(
                "leaf {leaf_index} is claimed twice (again by {})",
                claimant()
            )),
            None => self.problems.push(format!(
                "{} claims leaf {leaf_index}, beyond the log's size {size}",
                claimant()
            )),
        }
    }

    /// Moves `contiguous` past the leaves placed so far without a gap.
    fn advance(&self, contiguous: &mut usize) {
        while *contiguous < self.filled.len() && self.filled[*contiguous] {
            *contiguous += 1;
        }
    }
}

/// The tree rebuilt from the leaf hashes, grown as they arrive, with its root at every
/// checkpoint's size.
struct TreeBuilder {
    edge: trustlog::RightEdge,
    /// Checkpoint sizes, ascending, and the next one to reach.
    sizes: Vec<u64>,
    next_size: usize,
    roots: Vec<(u64, trustlog::Hash)>,
}

impl TreeBuilder {
    fn new(sizes: Vec<u64>) -> TreeBuilder {
        let mut tree = TreeBuilder {
            edge: trustlog::RightEdge::empty(),
            sizes,
            next_size: 0,
            roots: Vec::new(),
        };
        tree.note_root();
        tree
    }

    /// Records the root when the tree has a checkpoint's size.
    fn note_root(&mut self) {
        while self
            .sizes
            .get(self.next_size)
            .is_some_and(|size| *size <= self.edge.size())
        {
            if self.sizes[self.next_size] == self.edge.size() {
                self.roots.push((self.edge.size(), self.edge.root()));
            }
            self.next_size += 1;
        }
    }

    /// Appends `leaf_hashes[size..upto]`, stopping at each checkpoint size on the way.
    fn append_until(&mut self, leaf_hashes: &[trustlog::Hash], upto: usize) -> anyhow::Result<()> {
        let mut start = usize::try_from(self.edge.size())?;
        while start < upto {
            let limit = start + trustlog::APPEND_LEAVES_MAX.min(upto - start);
            let end = self.sizes.get(self.next_size).map_or(limit, |size| {
                usize::try_from(*size).map_or(limit, |size| size.min(limit))
            });
            self.edge = self
                .edge
                .append(&leaf_hashes[start..end])
                .map_err(|error| anyhow::anyhow!("{error}"))?
                .edge;
            self.note_root();
            start = end;
        }
        Ok(())
    }
}

/// Rebuilds the trust log from the leaf hashes and checks the stored tiles and checkpoints.
fn check_log(
    reader: &mut dyn StoreReader,
    log_size: u64,
    tree: &TreeBuilder,
    checkpoints: &[store::LogCheckpoint],
    leaves_problems: Vec<String>,
    verifier_key: Option<&str>,
) -> anyhow::Result<Vec<Check>> {
    let mut checkpoint_problems = Vec::new();
    let edge = &tree.edge;
    let roots: std::collections::HashMap<u64, trustlog::Hash> =
        tree.roots.iter().copied().collect();
    for checkpoint in checkpoints {
        match roots.get(&checkpoint.size) {
            Some(root) if *root == checkpoint.root => {}
            Some(_) => checkpoint_problems.push(format!(
                "checkpoint at size {} does not match the tree rebuilt from the transfers and registrations",
                checkpoint.size
            )),
            None => checkpoint_problems.push(format!(
                "checkpoint at size {} is beyond the log rebuilt from the transfers (size {})",
                checkpoint.size,
                edge.size()
            )),
        }
    }
    let tiles_root = {
        let tiles = sequencer::StoreTiles::new(reader);
        trustlog::RightEdge::from_tiles(log_size, &tiles).map(|stored| stored.root())
    };
    let mut tile_problems = Vec::new();
    match tiles_root {
        Ok(root) if root == edge.root() || !leaves_problems.is_empty() => {}
        Ok(_) => tile_problems.push(format!(
            "the stored tiles' root at size {log_size} differs from the transfers' tree"
        )),
        Err(error) => tile_problems.push(format!("the stored tiles cannot be read: {error}")),
    }
    match verifier_key {
        None => checkpoint_problems
            .push("no verifier key to check checkpoint signatures with (give --vkey)".to_owned()),
        Some(key) => {
            for checkpoint in checkpoints {
                let verdict = trustlog::verify_note(&checkpoint.note, key)
                    .map_err(|error| error.to_string())
                    .and_then(|note| {
                        let body = trustlog::Checkpoint::parse(&note.text)
                            .map_err(|error| error.to_string())?;
                        if body.size() == checkpoint.size && *body.root() == checkpoint.root {
                            Ok(())
                        } else {
                            Err("its signed text names another size or root".to_owned())
                        }
                    });
                if let Err(reason) = verdict {
                    checkpoint_problems
                        .push(format!("checkpoint at size {}: {reason}", checkpoint.size));
                }
            }
        }
    }
    checkpoint_problems.truncate(FINDINGS_MAX);
    Ok(vec![
        Check {
            name: "every transfer and registration is a leaf of the log, in order",
            problems: leaves_problems,
        },
        Check {
            name: "the stored tree matches the transfers and registrations",
            problems: tile_problems,
        },
        Check {
            name: "every checkpoint is signed and matches the transfers",
            problems: checkpoint_problems,
        },
    ])
}

struct Check {
    name: &'static str,
    problems: Vec<String>,
}

/// The checks SQL answers best, run on their own reader beside the pass over the rows.
fn sql_checks(reader: &mut dyn StoreReader) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    let totals = reader.currency_totals()?;
    checks.push(Check {
        name: "per currency, debits equal credits",
        problems: totals
            .iter()
            .filter(|totals| !totals.balanced())
            .map(|totals| {
                format!(
                    "{}: posted debits {} vs credits {}, pending debits {} vs credits {}",
                    totals.currency,
                    totals.debits_posted,
                    totals.credits_posted,
                    totals.debits_pending,
                    totals.credits_pending
                )
            })
            .collect(),
    });
    checks.push(Check {
        name: "no account breaks its flags",
        problems: reader
            .accounts_violating_flags(FINDINGS_MAX)?
            .iter()
            .map(|id| format!("account {id} breaks its flags"))
            .collect(),
    });
    let history = reader.history_counts()?;
    checks.push(Check {
        name: "the history index holds every transfer twice",
        problems: if history.postings == 2 * history.transfers {
            Vec::new()
        } else {
            vec![format!(
                "{} transfers but {} history postings (expected {})",
                history.transfers,
                history.postings,
                2 * history.transfers
            )]
        },
    });
    Ok(checks)
}

pub fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::from(
        crate::backend::open_existing_store(&args.data.directory(), &args.database)?,
    );
    let mut reader = store.reader()?;
    let head = reader.head()?;
    let verifier_key = match &args.vkey {
        Some(key) => Some(key.clone()),
        None => crate::log::load_signer(&args.data.directory())
            .ok()
            .map(|signer| signer.verifier_key_text()),
    };
    let sql_store = store.clone();
    let sql_thread = std::thread::spawn(move || -> anyhow::Result<Vec<Check>> {
        let mut reader = sql_store.reader()?;
        sql_checks(reader.as_mut())
    });
    let progress = Progress::start(
        "verifying leaves",
        head.log_size,
        !args.json && std::io::stderr().is_terminal(),
    );
    let checkpoints = reader.checkpoints()?;
    let mut tree = TreeBuilder::new(
        checkpoints
            .iter()
            .map(|checkpoint| checkpoint.size)
            .collect(),
    );
    let mut second_reader = store.reader()?;
    let (ledger_checks, leaves_problems) = pass_over_rows(
        reader.as_mut(),
        second_reader.as_mut(),
        head.transfer_id_max,
        head.log_size,
        &mut tree,
        &progress.counter(),
    )?;
    let log_checks = check_log(
        reader.as_mut(),
        head.log_size,
        &tree,
        &checkpoints,
        leaves_problems,
        verifier_key.as_deref(),
    )?;
    progress.counter().store(head.log_size, Ordering::Relaxed);
    drop(progress);
    let mut checks = sql_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the SQL checks panicked"))??;
    // In the order a reader thinks about them: money first, then the index, then the log.
    let history_check = checks
        .pop()
        .expect("the history check is the last SQL check");
    checks.extend(ledger_checks);
    checks.push(history_check);
    checks.extend(log_checks);
    let elapsed = started.elapsed().as_secs_f64();
    let leaves_per_second = head.log_size as f64 / elapsed.max(1e-9);
    let holds = checks.iter().all(|check| check.problems.is_empty());
    if args.json {
        let report = serde_json::json!({
            "ok": holds,
            "batches": head.batches,
            "leaves": head.log_size,
            "elapsed_seconds": elapsed,
            "leaves_per_second": leaves_per_second.round(),
            "checks": checks.iter().map(|check| serde_json::json!({
                "check": check.name,
                "ok": check.problems.is_empty(),
                "problems": check.problems,
            })).collect::<Vec<_>>(),
        });
        println!("{report}");
    } else {
        println!(
            "verifying {} ({} batches)",
            crate::backend::describe(&args.data.directory(), &args.database),
            head.batches
        );
        for check in &checks {
            let mark = if check.problems.is_empty() {
                "ok  "
            } else {
                "FAIL"
            };
            println!("{mark} {}", check.name);
            for problem in &check.problems {
                println!("       {problem}");
            }
        }
    }
    if let Some(broken) = checks.iter().find(|check| !check.problems.is_empty()) {
        anyhow::bail!(
            "verification failed: {}: {}",
            broken.name,
            broken.problems[0]
        );
    }
    if !args.json {
        println!(
            "everything holds ({} leaves in {elapsed:.2} s, {:.0} leaves/s)",
            head.log_size, leaves_per_second
        );
    }
    Ok(())
}
