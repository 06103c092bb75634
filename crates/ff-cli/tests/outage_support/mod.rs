//! Throwaway database servers the outage tests stop and start at will: a
//! `redis-server`, a three-master Redis Cluster and a Postgres cluster, each
//! on ports and in a directory of its own, so the shared servers other tests
//! use are never touched. Each keeps acknowledged writes across a SIGKILL
//! (AOF `always`; Postgres's WAL) and is killed and removed on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::Scratch;

/// A server a test can take away and bring back.
pub trait Throwaway {
    /// The `--db` URL of the running server.
    fn url(&self) -> String;
    /// Takes the server away abruptly.
    fn stop(&mut self);
    /// Brings it back; returns once it serves.
    fn start(&mut self);
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Polls `ready` every 50 ms for up to `limit`; whether it became true.
fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// `redis-cli -p PORT ARGS...`, its output, empty when it failed.
fn redis_cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default()
}

fn kill(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// One `redis-server` node, cluster-enabled or not.
struct RedisNode {
    port: u16,
    dir: PathBuf,
    cluster: bool,
    child: Option<Child>,
}

impl RedisNode {
    fn new(root: &Path, port: u16, cluster: bool) -> Self {
        let dir = root.join(port.to_string());
        std::fs::create_dir_all(&dir).expect("node dir");
        Self {
            port,
            dir,
            cluster,
            child: None,
        }
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(&self.dir);
        if self.cluster {
            cmd.args(["--cluster-enabled", "yes", "--cluster-config-file"])
                .arg(self.dir.join("nodes.conf"));
        }
        let log = self.dir.join("log");
        let child = cmd
            .arg("--logfile")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (is it installed?)");
        self.child = Some(child);
        let port = self.port;
        let up = wait_until(Duration::from_secs(10), || {
            redis_cli(port, &["ping"]).trim() == "PONG"
        });
        assert!(
            up,
            "redis-server on port {port} did not answer; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
}

impl Drop for RedisNode {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// A standalone `redis-server`.
pub struct Redis {
    node: RedisNode,
    _dir: Scratch,
}

impl Redis {
    pub fn start() -> Self {
        let dir = Scratch::new("outage-redis");
        let mut node = RedisNode::new(&dir.0, free_port(), false);
        node.spawn();
        Self { node, _dir: dir }
    }
}

impl Throwaway for Redis {
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.node.port)
    }

    fn stop(&mut self) {
        kill(&mut self.node.child);
    }

    fn start(&mut self) {
        self.node.spawn();
    }
}

/// Three cluster-enabled masters, no replicas; the slot layout survives
/// restarts in each node's `nodes.conf`.
pub struct RedisCluster {
    nodes: Vec<RedisNode>,
    _dir: Scratch,
}

impl RedisCluster {
    pub fn start() -> Self {
        let dir = Scratch::new("outage-cluster");
        let base = cluster_ports();
        let mut nodes: Vec<RedisNode> = (0..3)
            .map(|i| RedisNode::new(&dir.0, base + i, true))
            .collect();
        nodes.iter_mut().for_each(RedisNode::spawn);
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli --cluster create");
        assert!(created.success(), "the cluster was not created");
        let cluster = Self { nodes, _dir: dir };
        cluster.wait_ok();
        cluster
    }

    fn wait_ok(&self) {
        for node in &self.nodes {
            let ok = wait_until(Duration::from_secs(20), || {
                redis_cli(node.port, &["cluster", "info"]).contains("cluster_state:ok")
            });
            assert!(ok, "the cluster node on port {} is not ok", node.port);
        }
    }
}

/// One master of a [`RedisCluster`] taken away and brought back, the other
/// two serving meanwhile.
pub struct OneNode<'a> {
    pub cluster: &'a mut RedisCluster,
    pub node: usize,
}

impl Throwaway for OneNode<'_> {
    fn url(&self) -> String {
        self.cluster.url()
    }

    fn stop(&mut self) {
        kill(&mut self.cluster.nodes[self.node].child);
    }

    fn start(&mut self) {
        self.cluster.nodes[self.node].spawn();
        self.cluster.wait_ok();
    }
}

/// Three consecutive ports whose cluster bus ports (+10000) are free too,
/// all below Linux's ephemeral range (32768 up), where an outgoing
/// connection could take one while its node is away.
fn cluster_ports() -> u16 {
    for _ in 0..200 {
        let base = 12_000 + (free_port() % 10_000);
        if (base..base + 3).all(|p| port_is_free(p) && port_is_free(p + 10_000)) {
            return base;
        }
    }
    panic!("no free ports for a cluster");
}

impl Throwaway for RedisCluster {
    fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    fn stop(&mut self) {
        self.nodes.iter_mut().for_each(|n| kill(&mut n.child));
    }

    fn start(&mut self) {
        self.nodes.iter_mut().for_each(RedisNode::spawn);
        self.wait_ok();
    }
}

/// A Postgres cluster made with `initdb` in a directory of its own, trust
/// authentication, listening on 127.0.0.1 only.
pub struct Postgres {
    dir: Scratch,
    port: u16,
    running: bool,
}

impl Postgres {
    pub fn start() -> Self {
        let dir = Scratch::new("outage-postgres");
        if running_as_root() {
            // Postgres refuses to run as root; its files belong to `postgres`.
            let owned = Command::new("chown")
                .arg("postgres")
                .arg(&dir.0)
                .status()
                .expect("chown");
            assert!(owned.success(), "chown postgres {}", dir.0.display());
        }
        let init = pg_command("initdb")
            .arg("-D")
            .arg(dir.path("data"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("initdb runs (is Postgres installed?)");
        assert!(init.success(), "initdb failed");
        let mut pg = Self {
            dir,
            port: free_port(),
            running: false,
        };
        pg.start();
        pg
    }

    fn pg_ctl(&self, args: &[&str]) -> bool {
        pg_command("pg_ctl")
            .arg("-D")
            .arg(self.dir.path("data"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Throwaway for Postgres {
    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// An immediate shutdown: no checkpoint, recovery from the WAL at the
    /// next start, as after a crash.
    fn stop(&mut self) {
        assert!(
            self.pg_ctl(&["-m", "immediate", "-w", "stop"]),
            "pg_ctl stop"
        );
        self.running = false;
    }

    fn start(&mut self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on",
            self.port,
            self.dir.0.display()
        );
        let log = self.dir.path("log");
        let log = log.to_string_lossy();
        assert!(
            self.pg_ctl(&["-o", &options, "-l", &log, "-w", "-t", "30", "start"]),
            "pg_ctl start failed; see {log}"
        );
        self.running = true;
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
        }
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A Postgres server binary, run as `postgres` when the test runs as root.
fn pg_command(name: &str) -> Command {
    let path = pg_binary(name);
    if running_as_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(path);
        cmd
    } else {
        Command::new(path)
    }
}

/// `name` from `PATH`, else from Debian's `/usr/lib/postgresql/*/bin`.
fn pg_binary(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    if let Some(path) = on_path {
        return path;
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| dirs.filter_map(|d| d.ok().map(|d| d.path())).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .map(|v| v.join("bin").join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}
