//! Which store a command works on: the embedded SQLite store in the data directory, or the
//! PostgreSQL store at `--database-url`.

use std::path::Path;

use clap::Args;
use store::Store;
use store_postgres::PostgresStore;
use store_sqlite::SqliteStore;

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Use the PostgreSQL store at this URL (postgres://user@host:port/database; several hosts
    /// with target_session_attrs=read-write) instead of the SQLite store in the data directory.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

/// Opens (creating and migrating if needed) the store the arguments name.
pub fn open_store(
    data_directory: &Path,
    database: &DatabaseArgs,
) -> anyhow::Result<Box<dyn Store>> {
    Ok(match &database.database_url {
        Some(url) => Box::new(PostgresStore::open(url)?),
        None => Box::new(SqliteStore::open(data_directory)?),
    })
}

/// Opens an existing store without creating or migrating anything.
pub fn open_existing_store(
    data_directory: &Path,
    database: &DatabaseArgs,
) -> anyhow::Result<Box<dyn Store>> {
    Ok(match &database.database_url {
        Some(url) => Box::new(PostgresStore::open_existing(url)?),
        None => Box::new(SqliteStore::open_existing(data_directory)?),
    })
}

/// Where the store is, for people: the directory, or the URL without its password.
pub fn describe(data_directory: &Path, database: &DatabaseArgs) -> String {
    match &database.database_url {
        Some(url) => match url.split_once('@') {
            Some((credentials, rest))
                if credentials.contains(':') && credentials.contains("//") =>
            {
                let (scheme_user, _) = credentials.rsplit_once(':').unwrap_or((credentials, ""));
                format!("postgres at {scheme_user}:***@{rest}")
            }
            _ => format!("postgres at {url}"),
        },
        None => format!("sqlite at {}", data_directory.display()),
    }
}
