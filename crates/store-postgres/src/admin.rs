//! Writes outside the ledger's batches (credentials, witness cosignatures, audit progress),
//! each its own short transaction on a pooled connection.

use postgres::Row;
use store::{AdminWriter, Credential, CredentialRole, NewCredential, StoreError, StoreResult};

use crate::pool::PooledClient;
use crate::{map_error, signed, unsigned};

pub(crate) struct PostgresAdmin {
    client: PooledClient,
}

impl PostgresAdmin {
    pub(crate) fn new(client: PooledClient) -> Self {
        PostgresAdmin { client }
    }
}

const SELECT_CREDENTIAL: &str = "SELECT id, role, label, secret_digest, created_at, revoked_at
      FROM api_credentials WHERE id = $1";
const SELECT_CREDENTIALS: &str = "SELECT id, role, label, secret_digest, created_at, revoked_at
      FROM api_credentials ORDER BY id";

fn credential_from_row(row: &Row) -> StoreResult<Credential> {
    let role: &str = row.try_get(1).map_err(map_error)?;
    let digest: &[u8] = row.try_get(3).map_err(map_error)?;
    let revoked_at: Option<i64> = row.try_get(5).map_err(map_error)?;
    Ok(Credential {
        id: unsigned(row.try_get(0).map_err(map_error)?, "credential id")?,
        role: CredentialRole::from_name(role)
            .ok_or_else(|| StoreError::corrupt(format!("unknown credential role {role:?}")))?,
        label: row.try_get(2).map_err(map_error)?,
        secret_digest: digest
            .try_into()
            .map_err(|_| StoreError::corrupt("a credential digest is not 32 bytes"))?,
        created_at: unsigned(row.try_get(4).map_err(map_error)?, "time")?,
        revoked_at: revoked_at.map(|at| unsigned(at, "time")).transpose()?,
    })
}

/// One credential by id (for the readers that authenticate requests).
pub(crate) fn load_credential(
    client: &mut PooledClient,
    id: u64,
) -> StoreResult<Option<Credential>> {
    let Ok(id) = i64::try_from(id) else {
        return Ok(None);
    };
    let statement = client.statement(SELECT_CREDENTIAL)?;
    client
        .query_opt(&statement, &[&id])
        .map_err(map_error)?
        .map(|row| credential_from_row(&row))
        .transpose()
}

impl AdminWriter for PostgresAdmin {
    fn create_credential(&mut self, credential: &NewCredential) -> StoreResult<u64> {
        let row = self
            .client
            .query_one(
                "INSERT INTO api_credentials (role, label, secret_digest, created_at)
                 VALUES ($1, $2, $3, $4) RETURNING id",
                &[
                    &credential.role.name(),
                    &credential.label,
                    &&credential.secret_digest[..],
                    &signed(credential.created_at),
                ],
            )
            .map_err(map_error)?;
        unsigned(row.try_get(0).map_err(map_error)?, "credential id")
    }

    fn credentials(&mut self) -> StoreResult<Vec<Credential>> {
        let statement = self.client.statement(SELECT_CREDENTIALS)?;
        self.client
            .query(&statement, &[])
            .map_err(map_error)?
            .iter()
            .map(credential_from_row)
            .collect()
    }

    fn revoke_credential(&mut self, id: u64, at: u64) -> StoreResult<bool> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(false);
        };
        let changed = self
            .client
            .execute(
                "UPDATE api_credentials SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id, &signed(at)],
            )
            .map_err(map_error)?;
        Ok(changed == 1)
    }

    fn add_cosignature(
        &mut self,
        size: u64,
        witness: &str,
        line: &str,
        at: u64,
    ) -> StoreResult<()> {
        let size = i64::try_from(size).map_err(|_| StoreError::corrupt("log size beyond i64"))?;
        self.client
            .execute(
                "INSERT INTO log_cosignatures (size, witness, line, timestamp)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (size, witness) DO UPDATE SET line = excluded.line,
                    timestamp = excluded.timestamp",
                &[&size, &witness, &line, &signed(at)],
            )
            .map_err(map_error)?;
        Ok(())
    }

    fn record_audit(&mut self, size: u64, root: &[u8; 32], at: u64) -> StoreResult<()> {
        let size = i64::try_from(size).map_err(|_| StoreError::corrupt("log size beyond i64"))?;
        self.client
            .execute(
                "INSERT INTO log_audits (size, root, audited_at) VALUES ($1, $2, $3)
                 ON CONFLICT (size) DO UPDATE SET root = excluded.root,
                    audited_at = excluded.audited_at",
                &[&size, &&root[..], &signed(at)],
            )
            .map_err(map_error)?;
        Ok(())
    }
}
