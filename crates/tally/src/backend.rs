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
    #[arg(long, value_name = "URL", env = "TALLY_DATABASE_URL")]
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
        Some(url) => format!("postgres at {}", without_password(url)),
        None => format!("sqlite at {}", data_directory.display()),
    }
}

fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user_info, hosts)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{hosts}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn a_password_in_the_url_is_never_shown() {
        assert_eq!(
            without_password(
                "postgres://tally:secret@db1:5432,db2:5432/ledger?target_session_attrs=read-write"
            ),
            "postgres://tally:***@db1:5432,db2:5432/ledger?target_session_attrs=read-write"
        );
        assert_eq!(
            without_password("postgres://tally@127.0.0.1:5432/ledger"),
            "postgres://tally@127.0.0.1:5432/ledger"
        );
    }
}
