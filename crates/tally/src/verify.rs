//! `tally verify`: checks the ledger from what is on disk, and names the first broken thing.

use clap::Args;
use store::{Store, StoreReader};
use store_sqlite::SqliteStore;

use crate::DataArgs;

/// How many broken items of one kind are listed.
const FINDINGS_MAX: usize = 10;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

struct Check {
    name: &'static str,
    problems: Vec<String>,
}

fn run_checks(reader: &mut dyn StoreReader) -> anyhow::Result<Vec<Check>> {
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
    checks.push(Check {
        name: "every transfer names existing accounts of its currency",
        problems: reader
            .transfers_with_bad_accounts(FINDINGS_MAX)?
            .iter()
            .map(|id| format!("transfer {id} names a missing account or another currency"))
            .collect(),
    });
    checks.push(Check {
        name: "every balance equals the sum of its transfers",
        problems: reader
            .balance_mismatches(FINDINGS_MAX)?
            .iter()
            .map(|mismatch| {
                format!(
                    "account {}: stored (debits pending/posted, credits pending/posted) {:?}, its transfers add up to {:?}",
                    mismatch.account_id, mismatch.stored, mismatch.from_transfers
                )
            })
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
    let store = SqliteStore::open_existing(&args.data.directory())?;
    let mut reader = store.reader()?;
    let head = reader.head()?;
    let checks = run_checks(reader.as_mut())?;
    let holds = checks.iter().all(|check| check.problems.is_empty());
    if args.json {
        let report = serde_json::json!({
            "ok": holds,
            "batches": head.batches,
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
            store.path().display(),
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
        println!("everything holds");
    }
    Ok(())
}
