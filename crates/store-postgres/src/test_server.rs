//! A throwaway PostgreSQL server for tests, from the system's PostgreSQL 15+ binaries.
//!
//! [`TestServer::start`] runs `initdb` into a new temporary directory, starts `postgres` on a
//! free loopback port with `fsync` and `synchronous_commit` on, waits until it accepts
//! connections, and creates an unprivileged role `tally` that owns every database made by
//! [`TestServer::create_database`]. Dropping the server stops it and removes the directory.
//!
//! The server is started by a small shell that holds the read end of a pipe from this process:
//! when the pipe closes (the server is dropped, or the test process ends in any way, even
//! killed), the shell stops PostgreSQL and removes the directory, so no server outlives its
//! tests. [`TestServer::shared`] is one server per test process, for test binaries with many
//! tests (each takes its own database).
//!
//! PostgreSQL refuses to run as root; under root (as in CI) the binaries run as the system user
//! [`SYSTEM_USER`], created when missing, which owns the temporary directory.
//!
//! For fail-over tests, [`TestServer::add_synchronous_standby`] makes a streaming-replication
//! standby of a server (`pg_basebackup -R`, started on another port) and names it in the
//! primary's `synchronous_standby_names`; [`TestServer::kill`] ends a server with SIGKILL (the
//! postmaster and every backend, as a crashed machine would), [`TestServer::stall_wal_receiver`]
//! makes a standby fall behind, and [`TestServer::promote`] makes a standby the primary.
//!
//! A missing binary is an error, never a reason to skip: the caller's test fails and says what
//! to install.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The unprivileged system user that runs PostgreSQL when the tests run as root.
pub const SYSTEM_USER: &str = "tally-pg";
/// The oldest major version the store supports.
pub const POSTGRES_MAJOR_MIN: u32 = 15;
/// How long the server may take to accept connections.
pub const STARTUP_TIMEOUT_MS: u64 = 60_000;
/// How long the server may take to stop when dropped.
pub const STOP_TIMEOUT_MS: u64 = 30_000;
/// Ports tried before giving up (another process may take the free port first).
pub const START_ATTEMPTS_MAX: u32 = 3;
const POLL_INTERVAL_MS: u64 = 50;
/// Connections the test server accepts: tests open pools of their own.
const CONNECTIONS_MAX: u32 = 200;
/// The unprivileged role that owns the test databases.
pub const ROLE: &str = "tally";
const SUPERUSER: &str = "postgres";

#[derive(Debug, thiserror::Error)]
pub enum TestServerError {
    #[error(
        "the PostgreSQL {POSTGRES_MAJOR_MIN}+ server binaries (initdb, postgres) were not found \
         (looked in: {searched}); install them, e.g. `apt-get install postgresql`, or set \
         TALLY_PG_BINDIR"
    )]
    BinariesMissing { searched: String },
    #[error("{what} failed: {message}")]
    Command { what: String, message: String },
    #[error("PostgreSQL did not start: {0}")]
    Startup(String),
    #[error("{0}")]
    Database(String),
}

type TestResult<T> = Result<T, TestServerError>;

/// A driver error with the server's own message when there is one ("db error" says nothing).
fn database_error(error: postgres::Error) -> TestServerError {
    TestServerError::Database(match error.as_db_error() {
        Some(database) => format!("{}: {}", database.code().code(), database.message()),
        None => error.to_string(),
    })
}

fn command_error(what: &str, message: impl std::fmt::Display) -> TestServerError {
    TestServerError::Command {
        what: what.to_owned(),
        message: message.to_string(),
    }
}

/// A running throwaway server.
#[derive(Debug)]
pub struct TestServer {
    supervisor: Child,
    /// Closing it tells the supervisor to stop the server and remove the directory.
    lifeline: Option<ChildStdin>,
    port: u16,
    directory: PathBuf,
    databases: AtomicU64,
    binaries: Binaries,
    user: Option<(u32, u32)>,
}

/// Where the PostgreSQL binaries are.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub directory: PathBuf,
    pub major: u32,
}

fn major_version(postgres: &Path) -> Option<u32> {
    let output = Command::new(postgres).arg("--version").output().ok()?;
    // "postgres (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)"
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.split(')').nth(1)?.split_whitespace().next()?;
    version.split('.').next()?.parse().ok()
}

fn usable(directory: &Path) -> Option<Binaries> {
    if !directory.join("initdb").is_file() {
        return None;
    }
    let major = major_version(&directory.join("postgres"))?;
    (major >= POSTGRES_MAJOR_MIN).then(|| Binaries {
        directory: directory.to_path_buf(),
        major,
    })
}

/// Finds the server binaries: `TALLY_PG_BINDIR`, `pg_config --bindir`, the newest
/// `/usr/lib/postgresql/*/bin` (Debian), then `PATH`.
pub fn find_binaries() -> TestResult<Binaries> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(directory) = std::env::var_os("TALLY_PG_BINDIR") {
        candidates.push(directory.into());
    }
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        if output.status.success() {
            candidates.push(String::from_utf8_lossy(&output.stdout).trim().into());
        }
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let major = entry.file_name().to_str()?.parse().ok()?;
                Some((major, entry.path().join("bin")))
            })
            .collect();
        versions.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
        candidates.extend(versions.into_iter().map(|(_, path)| path));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    for candidate in &candidates {
        if let Some(binaries) = usable(candidate) {
            return Ok(binaries);
        }
    }
    Err(TestServerError::BinariesMissing {
        searched: "TALLY_PG_BINDIR, pg_config --bindir, /usr/lib/postgresql/*/bin, PATH".into(),
    })
}

fn output_of(command: &mut Command, what: &str) -> TestResult<String> {
    let output = command
        .output()
        .map_err(|error| command_error(what, error))?;
    if !output.status.success() {
        return Err(command_error(
            what,
            format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// The user and group ids to run PostgreSQL as, when root: [`SYSTEM_USER`], created if needed.
fn system_user() -> TestResult<(u32, u32)> {
    let ids = || -> Option<(u32, u32)> {
        let id = |flag: &str| -> Option<u32> {
            let output = Command::new("id").args([flag, SYSTEM_USER]).output().ok()?;
            if !output.status.success() {
                return None;
            }
            String::from_utf8_lossy(&output.stdout).trim().parse().ok()
        };
        Some((id("-u")?, id("-g")?))
    };
    if let Some(found) = ids() {
        return Ok(found);
    }
    let created = Command::new("useradd")
        .args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            SYSTEM_USER,
        ])
        .output()
        .map_err(|error| command_error("useradd", error))?;
    // Another test process may have created it in the meantime: look again either way.
    ids().ok_or_else(|| {
        command_error(
            &format!("useradd {SYSTEM_USER}"),
            String::from_utf8_lossy(&created.stderr).trim(),
        )
    })
}

/// A new, empty directory for one server.
fn new_directory() -> TestResult<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    let directory = std::env::temp_dir().join(format!(
        "tally-pg-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir(&directory)
        .map_err(|error| command_error(&format!("mkdir {}", directory.display()), error))?;
    Ok(directory)
}

fn free_port() -> TestResult<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|error| command_error("finding a free port", error))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|error| command_error("finding a free port", error))
}

/// Runs `program` as the server's user: directly, or through `setpriv` under root.
fn as_server_user(program: &Path, user: Option<(u32, u32)>) -> Command {
    match user {
        Some((uid, gid)) => {
            let mut command = Command::new("setpriv");
            command
                .arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// Starts PostgreSQL in the background and stops it (then removes the directory) when its
/// standard input closes.
const SUPERVISOR_SCRIPT: &str = r#"
"$1" -D "$2/data" -p "$3" -k "$2" -c listen_addresses=127.0.0.1 -c fsync=on \
    -c synchronous_commit=on -c full_page_writes=on -c max_connections="$4" \
    > "$2/server.log" 2>&1 &
server=$!
cat > /dev/null
kill -INT "$server" 2> /dev/null
wait "$server"
rm -rf "$2"
"#;

impl TestServer {
    /// Starts a new server (see the module's documentation).
    pub fn start() -> TestResult<TestServer> {
        let binaries = find_binaries()?;
        let user = if running_as_root() {
            Some(system_user()?)
        } else {
            None
        };
        let mut last_error = None;
        // A failed attempt removes its directory (the supervisor does, when dropped).
        for _ in 0..START_ATTEMPTS_MAX {
            match Self::attempt(&binaries, user) {
                Ok(server) => return Ok(server),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| TestServerError::Startup("no attempt made".into())))
    }

    fn attempt(binaries: &Binaries, user: Option<(u32, u32)>) -> TestResult<TestServer> {
        let directory = new_directory()?;
        let initialised = Self::initdb(binaries, user, &directory);
        if let Err(error) = initialised {
            let _ = std::fs::remove_dir_all(&directory);
            return Err(error);
        }
        Self::launch(binaries, user, &directory, true)
    }

    fn initdb(binaries: &Binaries, user: Option<(u32, u32)>, directory: &Path) -> TestResult<()> {
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(directory, Some(uid), Some(gid))
                .map_err(|error| command_error("chown of the server's directory", error))?;
        }
        output_of(
            as_server_user(&binaries.directory.join("initdb"), user)
                .current_dir(directory)
                .arg("--pgdata")
                .arg(directory.join("data"))
                .args([
                    "--username",
                    SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    // Only initdb's own files; the running server keeps fsync on.
                    "--no-sync",
                ]),
            "initdb",
        )?;
        Ok(())
    }

    /// Starts the server in `directory/data`; a primary gets the unprivileged role (a standby
    /// has it from its primary).
    fn launch(
        binaries: &Binaries,
        user: Option<(u32, u32)>,
        directory: &Path,
        primary: bool,
    ) -> TestResult<Self> {
        let port = free_port()?;
        let mut supervisor = as_server_user(Path::new("sh"), user)
            .current_dir(directory)
            .arg("-c")
            .arg(SUPERVISOR_SCRIPT)
            .arg("tally-test-postgres")
            .arg(binaries.directory.join("postgres"))
            .arg(directory)
            .arg(port.to_string())
            .arg(CONNECTIONS_MAX.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| command_error("starting postgres", error))?;
        let lifeline = supervisor.stdin.take();
        let server = TestServer {
            supervisor,
            lifeline,
            port,
            directory: directory.to_path_buf(),
            databases: AtomicU64::new(0),
            binaries: binaries.clone(),
            user,
        };
        server.wait_until_ready()?;
        if primary {
            let mut client = server.superuser()?;
            client
                .batch_execute(&format!("CREATE ROLE {ROLE} LOGIN"))
                .map_err(|error| TestServerError::Database(error.to_string()))?;
        }
        Ok(server)
    }

    fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(self.directory.join("server.log")) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    fn wait_until_ready(&self) -> TestResult<()> {
        let deadline = Instant::now() + Duration::from_millis(STARTUP_TIMEOUT_MS);
        loop {
            if self.superuser().is_ok() {
                return Ok(());
            }
            let log = self.log();
            // Our own early connection attempts are refused while the server starts ("is
            // starting up"), and by a standby until its recovery is consistent ("is not yet
            // accepting connections"): not failures. Anything else fatal (a port taken, a bad
            // setting) is.
            let fatal: Vec<&str> = log
                .lines()
                .filter(|line| {
                    (line.contains("FATAL") || line.contains("PANIC"))
                        && !line.contains("is starting up")
                        && !line.contains("is not yet accepting connections")
                })
                .collect();
            if !fatal.is_empty() || Instant::now() >= deadline {
                return Err(TestServerError::Startup(format!(
                    "port {}: {}",
                    self.port,
                    if fatal.is_empty() {
                        "no connection before the time limit".to_owned()
                    } else {
                        fatal.join("; ")
                    }
                )));
            }
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
        }
    }

    fn superuser(&self) -> TestResult<postgres::Client> {
        postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user(SUPERUSER)
            .dbname("postgres")
            .connect_timeout(Duration::from_millis(STARTUP_TIMEOUT_MS))
            .connect(postgres::NoTls)
            .map_err(|error| TestServerError::Database(error.to_string()))
    }

    /// One server for the whole test process, started by the first caller.
    pub fn shared() -> TestResult<&'static TestServer> {
        static SHARED: OnceLock<Result<TestServer, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| TestServer::start().map_err(|error| error.to_string()))
            .as_ref()
            .map_err(|message| TestServerError::Startup(message.clone()))
    }

    /// A new, empty database owned by the unprivileged role; returns its URL.
    pub fn create_database(&self) -> TestResult<String> {
        let name = format!("tally_{}", self.databases.fetch_add(1, Ordering::SeqCst));
        let mut client = self.superuser()?;
        client
            .batch_execute(&format!("CREATE DATABASE {name} OWNER {ROLE}"))
            .map_err(|error| TestServerError::Database(error.to_string()))?;
        Ok(self.url(&name))
    }

    /// The URL of `database` for the unprivileged role.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{ROLE}@127.0.0.1:{}/{database}", self.port)
    }

    /// The superuser's URL, for tests that need to play an operator.
    pub fn superuser_url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A streaming-replication standby of this server, started on another port, named
    /// `application_name` in its `primary_conninfo` and made synchronous here
    /// (`synchronous_standby_names`; `synchronous_commit` is on): from when this returns, a
    /// commit on this server returns only once the standby has the commit on disk.
    pub fn add_synchronous_standby(&self, application_name: &str) -> TestResult<TestServer> {
        let directory = new_directory()?;
        let standby = self
            .base_backup(&directory, application_name)
            .and_then(|()| Self::launch(&self.binaries, self.user, &directory, false));
        let standby = match standby {
            Ok(standby) => standby,
            Err(error) => {
                let _ = std::fs::remove_dir_all(&directory);
                return Err(error);
            }
        };
        let mut client = self.superuser()?;
        // ALTER SYSTEM may not run in a transaction, nor in an implicit one of several
        // statements.
        for statement in [
            format!("ALTER SYSTEM SET synchronous_standby_names = '{application_name}'"),
            "SELECT pg_reload_conf()".to_owned(),
        ] {
            client.batch_execute(&statement).map_err(database_error)?;
        }
        let deadline = Instant::now() + Duration::from_millis(STARTUP_TIMEOUT_MS);
        loop {
            let state: Option<String> = client
                .query_opt(
                    "SELECT sync_state FROM pg_stat_replication WHERE application_name = $1",
                    &[&application_name],
                )
                .map_err(database_error)?
                .map(|row| row.try_get(0))
                .transpose()
                .map_err(database_error)?;
            if state.as_deref() == Some("sync") {
                return Ok(standby);
            }
            if Instant::now() >= deadline {
                return Err(TestServerError::Startup(format!(
                    "the standby {application_name} did not become synchronous (state {state:?})"
                )));
            }
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
        }
    }

    /// `pg_basebackup -R` of this server into `directory/data`, following it as
    /// `application_name`.
    fn base_backup(&self, directory: &Path, application_name: &str) -> TestResult<()> {
        if let Some((uid, gid)) = self.user {
            std::os::unix::fs::chown(directory, Some(uid), Some(gid))
                .map_err(|error| command_error("chown of the standby's directory", error))?;
        }
        let conninfo = format!(
            "host=127.0.0.1 port={} user={SUPERUSER} application_name={application_name}",
            self.port
        );
        output_of(
            as_server_user(&self.binaries.directory.join("pg_basebackup"), self.user)
                .current_dir(directory)
                .arg("--pgdata")
                .arg(directory.join("data"))
                .arg("--dbname")
                .arg(&conninfo)
                .args([
                    "--write-recovery-conf",
                    "--wal-method=stream",
                    "--checkpoint=fast",
                ]),
            "pg_basebackup",
        )?;
        // The last setting in the file wins: make sure the standby names itself.
        let auto_conf = directory.join("data").join("postgresql.auto.conf");
        let mut settings = std::fs::read_to_string(&auto_conf)
            .map_err(|error| command_error("reading postgresql.auto.conf", error))?;
        settings.push_str(&format!("primary_conninfo = '{conninfo}'\n"));
        std::fs::write(&auto_conf, settings)
            .map_err(|error| command_error("writing postgresql.auto.conf", error))
    }

    /// Ends the server as a crash would: SIGKILL to the postmaster and every process it
    /// started, nothing flushed, no shutdown checkpoint. The directory stays until the server
    /// is dropped.
    pub fn kill(&self) -> TestResult<()> {
        let pid_file = self.directory.join("data").join("postmaster.pid");
        let text = std::fs::read_to_string(&pid_file)
            .map_err(|error| command_error("reading postmaster.pid", error))?;
        let postmaster: u32 = text
            .lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .ok_or_else(|| command_error("reading postmaster.pid", "no process id"))?;
        let mut pids = vec![postmaster];
        pids.extend(children_of(postmaster));
        let mut command = Command::new("kill");
        command.arg("-KILL");
        command.args(pids.iter().map(u32::to_string));
        // A backend may have ended on its own in the meantime: the postmaster's end is what
        // counts.
        let _ = command.output();
        let deadline = Instant::now() + Duration::from_millis(STOP_TIMEOUT_MS);
        while Path::new(&format!("/proc/{postmaster}")).exists() && !is_zombie(postmaster) {
            if Instant::now() >= deadline {
                return Err(command_error(
                    "kill -KILL",
                    "the postmaster is still running",
                ));
            }
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
        }
        Ok(())
    }

    /// On a standby: stops its WAL receiver (SIGSTOP), as a slow or cut-off standby would be,
    /// until the returned guard is dropped, which kills it (SIGKILL): what it had received but
    /// not yet written is lost, and the standby restarts from what is on its disk. A
    /// synchronous primary's commits wait meanwhile; an asynchronous one's go on.
    pub fn stall_wal_receiver(&self) -> TestResult<StalledWalReceiver> {
        // A busy machine may close a new session before it is used: ask again for a while.
        let deadline = Instant::now() + Duration::from_millis(STARTUP_TIMEOUT_MS);
        let pid: i32 = loop {
            let asked = self.superuser().and_then(|mut client| {
                client
                    .query_opt("SELECT pid FROM pg_stat_wal_receiver", &[])
                    .map_err(database_error)?
                    .ok_or_else(|| {
                        TestServerError::Database("this server has no WAL receiver".into())
                    })?
                    .try_get(0)
                    .map_err(database_error)
            });
            match asked {
                Ok(pid) => break pid,
                Err(error) if Instant::now() >= deadline => return Err(error),
                Err(_) => std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS)),
            }
        };
        let pid = u32::try_from(pid)
            .map_err(|_| TestServerError::Database(format!("a WAL receiver with pid {pid}")))?;
        output_of(
            Command::new("kill").args(["-STOP", &pid.to_string()]),
            "kill -STOP",
        )?;
        Ok(StalledWalReceiver { pid })
    }

    /// Ends recovery on a standby: it becomes a primary and accepts writes.
    pub fn promote(&self) -> TestResult<()> {
        // The standby may be restarting (after its WAL receiver was killed, or when a child
        // of it crashed meanwhile, which ends every session): ask again until it answers.
        let deadline = Instant::now() + Duration::from_millis(STARTUP_TIMEOUT_MS);
        loop {
            let attempt = self.superuser().and_then(|mut client| {
                let in_recovery: bool = client
                    .query_one("SELECT pg_is_in_recovery()", &[])
                    .and_then(|row| row.try_get(0))
                    .map_err(database_error)?;
                if !in_recovery {
                    // Promoted, perhaps by an attempt whose answer was lost.
                    return Ok(true);
                }
                client
                    .query_one("SELECT pg_promote(true, 60)", &[])
                    .and_then(|row| row.try_get(0))
                    .map_err(database_error)
            });
            match attempt {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    return Err(TestServerError::Database(
                        "pg_promote did not finish within 60 s".into(),
                    ))
                }
                Err(error) if Instant::now() >= deadline => return Err(error),
                Err(_) => std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS)),
            }
        }
    }
}

/// A standby's WAL receiver stopped by [`TestServer::stall_wal_receiver`]; killed when dropped,
/// so no stopped process outlives the test.
#[derive(Debug)]
pub struct StalledWalReceiver {
    pid: u32,
}

impl Drop for StalledWalReceiver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .output();
    }
}

/// The fields of /proc/PID/stat after the command: the state, the parent, …
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    Some(after.split_whitespace().map(str::to_owned).collect())
}

fn is_zombie(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|fields| fields.first().map(String::as_str) == Some("Z"))
}

/// The processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            stat_fields(pid)
                .and_then(|fields| fields.get(1)?.parse::<u32>().ok())
                .is_some_and(|ppid| ppid == parent)
        })
        .collect()
}

impl Drop for TestServer {
    fn drop(&mut self) {
        drop(self.lifeline.take());
        let deadline = Instant::now() + Duration::from_millis(STOP_TIMEOUT_MS);
        while Instant::now() < deadline {
            if matches!(self.supervisor.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
        }
        let _ = self.supervisor.kill();
        let _ = self.supervisor.wait();
    }
}
