//! Writes outside the ledger's batches (credentials, witness cosignatures), on a connection of
//! their own. SQLite serialises them with the sequencer's transactions; each is short.

use rusqlite::{params, Connection, OptionalExtension, Row};
use store::{AdminWriter, Credential, CredentialRole, NewCredential, StoreError, StoreResult};

use crate::map_error;

pub(crate) struct SqliteAdmin {
    connection: Connection,
}

impl SqliteAdmin {
    pub(crate) fn new(connection: Connection) -> Self {
        SqliteAdmin { connection }
    }
}

fn seconds(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn credential_from_row(row: &Row<'_>) -> rusqlite::Result<StoreResult<Credential>> {
    let id: i64 = row.get(0)?;
    let role: String = row.get(1)?;
    let label: String = row.get(2)?;
    let digest: Vec<u8> = row.get(3)?;
    let created_at: i64 = row.get(4)?;
    let revoked_at: Option<i64> = row.get(5)?;
    Ok((|| {
        Ok(Credential {
            id: u64::try_from(id).map_err(|_| StoreError::corrupt("negative credential id"))?,
            role: CredentialRole::from_name(&role)
                .ok_or_else(|| StoreError::corrupt(format!("unknown credential role {role:?}")))?,
            label,
            secret_digest: digest
                .try_into()
                .map_err(|_| StoreError::corrupt("a credential digest is not 32 bytes"))?,
            created_at: u64::try_from(created_at).unwrap_or(0),
            revoked_at: revoked_at.map(|at| u64::try_from(at).unwrap_or(0)),
        })
    })())
}

const CREDENTIAL_COLUMNS: &str = "id, role, label, secret_digest, created_at, revoked_at";

/// One credential by id (for the readers that authenticate requests).
pub(crate) fn load_credential(connection: &Connection, id: u64) -> StoreResult<Option<Credential>> {
    let Ok(id) = i64::try_from(id) else {
        return Ok(None);
    };
    connection
        .prepare_cached(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM api_credentials WHERE id = ?1"
        ))
        .map_err(map_error)?
        .query_row([id], credential_from_row)
        .optional()
        .map_err(map_error)?
        .transpose()
}

impl AdminWriter for SqliteAdmin {
    fn create_credential(&mut self, credential: &NewCredential) -> StoreResult<u64> {
        self.connection
            .prepare_cached(
                "INSERT INTO api_credentials (role, label, secret_digest, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(map_error)?
            .execute(params![
                credential.role.name(),
                credential.label,
                &credential.secret_digest[..],
                seconds(credential.created_at),
            ])
            .map_err(map_error)?;
        u64::try_from(self.connection.last_insert_rowid())
            .map_err(|_| StoreError::corrupt("negative credential id"))
    }

    fn credentials(&mut self) -> StoreResult<Vec<Credential>> {
        let mut statement = self
            .connection
            .prepare_cached(&format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM api_credentials ORDER BY id"
            ))
            .map_err(map_error)?;
        let rows = statement
            .query_map([], credential_from_row)
            .map_err(map_error)?;
        let mut credentials = Vec::new();
        for row in rows {
            credentials.push(row.map_err(map_error)??);
        }
        Ok(credentials)
    }

    fn revoke_credential(&mut self, id: u64, at: u64) -> StoreResult<bool> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(false);
        };
        let changed = self
            .connection
            .prepare_cached(
                "UPDATE api_credentials SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            )
            .map_err(map_error)?
            .execute(params![id, seconds(at)])
            .map_err(map_error)?;
        Ok(changed == 1)
    }

    fn record_audit(&mut self, size: u64, root: &[u8; 32], at: u64) -> StoreResult<()> {
        let size = i64::try_from(size).map_err(|_| StoreError::corrupt("log size beyond i64"))?;
        self.connection
            .prepare_cached(
                "INSERT INTO log_audits (size, root, audited_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (size) DO UPDATE SET root = excluded.root,
                    audited_at = excluded.audited_at",
            )
            .map_err(map_error)?
            .execute(params![size, &root[..], seconds(at)])
            .map_err(map_error)?;
        Ok(())
    }

    fn add_cosignature(
        &mut self,
        size: u64,
        witness: &str,
        line: &str,
        at: u64,
    ) -> StoreResult<()> {
        let size = i64::try_from(size).map_err(|_| StoreError::corrupt("log size beyond i64"))?;
        self.connection
            .prepare_cached(
                "INSERT INTO log_cosignatures (size, witness, line, timestamp)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (size, witness) DO UPDATE SET line = excluded.line,
                    timestamp = excluded.timestamp",
            )
            .map_err(map_error)?
            .execute(params![size, witness, line, seconds(at)])
            .map_err(map_error)?;
        Ok(())
    }
}
