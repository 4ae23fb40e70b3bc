//! Client and admin commands that work without a mount, through the client library.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustre_fuse::client::{admin, path, ClientConfig, TransferError};
use rustre_fuse::Client;
use rustre_proto::auth::{self, ClusterKey};
use rustre_proto::msg::mgs::NodeState;
use rustre_proto::msg::{Attr, Creds, FileKind, LayoutSpec};

/// Options every command shares.
pub(crate) struct Global {
    pub mgs: String,
    pub cluster: String,
    /// `--secret-file` (or `RUSTRE_SECRET_FILE`), if given.
    pub secret_file: Option<PathBuf>,
}

impl Global {
    /// The secret file to use: the one given, else the default.
    pub(crate) fn secret_path(&self) -> PathBuf {
        auth::secret_file_or_default(self.secret_file.as_deref())
    }

    /// The cluster secret, from the secret file.
    pub(crate) fn key(&self) -> Result<ClusterKey, String> {
        ClusterKey::load(&self.secret_path()).map_err(|e| e.to_string())
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn with_path(path: &str) -> impl Fn(rustre_proto::Error) -> String + '_ {
    move |e| format!("{path}: {e}")
}

/// The calling user's credentials.
fn my_creds() -> Creds {
    // SAFETY: plain libc identity getters with a correctly sized buffer.
    unsafe {
        let mut groups = vec![0 as libc::gid_t; rustre_proto::msg::MAX_GROUPS];
        let n = libc::getgroups(groups.len() as i32, groups.as_mut_ptr());
        groups.truncate(n.max(0) as usize);
        Creds {
            uid: libc::getuid(),
            gid: libc::getgid(),
            groups,
        }
    }
}

pub(crate) async fn connect(g: &Global) -> Result<Arc<Client>, String> {
    let cfg = ClientConfig {
        mgs_addr: g.mgs.clone(),
        cluster: g.cluster.clone(),
        client_name: format!("rustre-cli-{}", std::process::id()),
        key: g.key()?,
    };
    Client::connect(&cfg)
        .await
        .map_err(|e| format!("cannot reach the cluster at {}: {e}", g.mgs))
}

fn human(bytes: u64) -> String {
    let units = ["B", "K", "M", "G", "T", "P"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.1}{}", units[u])
    }
}

pub(crate) async fn status(g: &Global) -> Result<(), String> {
    let map = admin::cluster_map(&g.mgs, &g.cluster, &g.key()?)
        .await
        .map_err(|e| format!("cannot reach the MGS at {}: {e}", g.mgs))?;
    println!("cluster {} epoch {}", map.cluster_name, map.epoch);
    println!("MGS {} up", g.mgs);
    for m in &map.mds {
        println!("MDS {} {}", m.addr, state(m.state));
    }
    for o in &map.osts {
        let used = o.capacity.total_bytes.saturating_sub(o.capacity.free_bytes);
        println!(
            "OST{:04} {} {} size {} used {} avail {}",
            o.index,
            o.addr,
            state(o.state),
            human(o.capacity.total_bytes),
            human(used),
            human(o.capacity.avail_bytes)
        );
    }
    print_stuck_copies(g).await;
    Ok(())
}

/// The copies resync cannot refill, as every MDS reports them (a line each), or one line
/// saying there are none.
async fn print_stuck_copies(g: &Global) {
    let c = match connect(g).await {
        Ok(c) => c,
        Err(e) => {
            println!("resync: unknown ({e})");
            return;
        }
    };
    let mut stuck = 0;
    for (mds, answer) in c.stuck_copies().await {
        match answer {
            Ok(list) => {
                for s in list {
                    stuck += 1;
                    println!(
                        "resync stuck: inode {} copy slot {} on OST{:04}: {} ({} attempts, MDS {mds})",
                        s.ino, s.slot, s.ost, s.error, s.attempts
                    );
                }
            }
            Err(e) => println!("resync: MDS {mds} did not answer: {e}"),
        }
    }
    if stuck == 0 {
        println!("resync: no copy stuck");
    }
    let _ = c.close().await;
}

fn state(s: NodeState) -> &'static str {
    match s {
        NodeState::Up => "up",
        NodeState::Down => "down",
    }
}

pub(crate) async fn df(g: &Global) -> Result<(), String> {
    let c = connect(g).await?;
    let s = c.statfs(&my_creds()).await.map_err(err)?;
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>5}",
        "target", "size", "used", "avail", "use%"
    );
    let map = c.cluster_map();
    let row = |name: String, total: u64, free: u64, avail: u64| {
        let used = total.saturating_sub(free);
        let pct = (used * 100).checked_div(total).unwrap_or(0);
        println!(
            "{name:<12} {:>10} {:>10} {:>10} {pct:>4}%",
            human(total),
            human(used),
            human(avail)
        );
    };
    for o in &map.osts {
        let c = o.capacity;
        let name = format!(
            "OST{:04}{}",
            o.index,
            if o.state == NodeState::Up { "" } else { "*" }
        );
        row(name, c.total_bytes, c.free_bytes, c.avail_bytes);
    }
    let c2 = s.capacity;
    row(
        "filesystem".into(),
        c2.total_bytes,
        c2.free_bytes,
        c2.avail_bytes,
    );
    println!("inodes used {}", s.files);
    c.close().await.map_err(err)
}

pub(crate) async fn put(
    g: &Global,
    local: &Path,
    dest: &str,
    spec: Option<LayoutSpec>,
) -> Result<(), String> {
    let mut src = tokio::fs::File::open(local)
        .await
        .map_err(|e| format!("{}: {e}", local.display()))?;
    let c = connect(g).await?;
    let creds = my_creds();
    let mut dest = dest.to_string();
    if let Ok(a) = c.resolve(&creds, &dest, true).await {
        if a.kind == FileKind::Dir {
            let base = local.file_name().ok_or("local path has no file name")?;
            dest = format!("{dest}/{}", base.to_string_lossy());
        }
    }
    let (parent, name) = c
        .resolve_parent(&creds, &dest)
        .await
        .map_err(with_path(&dest))?;
    let copied = c
        .put(&creds, parent, &name, 0o644, spec, &mut src)
        .await
        .map_err(|e| match e {
            TransferError::Local(e) => format!("{}: {e}", local.display()),
            TransferError::Cluster(e) => format!("{dest}: {e}"),
        });
    c.close().await.map_err(err)?;
    copied.map(|_| ())
}

pub(crate) async fn get(g: &Global, src: &str, local: &Path) -> Result<(), String> {
    let c = connect(g).await?;
    let creds = my_creds();
    let a = c.resolve(&creds, src, true).await.map_err(with_path(src))?;
    if a.kind != FileKind::File {
        return Err(format!("{src}: not a regular file"));
    }
    let mut out = tokio::fs::File::create(local)
        .await
        .map_err(|e| format!("{}: {e}", local.display()))?;
    let copied = c.get(&creds, a.ino, &mut out).await.map_err(|e| match e {
        TransferError::Local(e) => format!("{}: {e}", local.display()),
        TransferError::Cluster(e) => format!("{src}: {e}"),
    });
    c.close().await.map_err(err)?;
    copied?;
    out.sync_all()
        .await
        .map_err(|e| format!("{}: {e}", local.display()))
}

fn mode_string(a: &Attr) -> String {
    let t = match a.kind {
        FileKind::Dir => 'd',
        FileKind::Symlink => 'l',
        FileKind::Fifo => 'p',
        FileKind::Socket => 's',
        FileKind::CharDev => 'c',
        FileKind::BlockDev => 'b',
        FileKind::File => '-',
    };
    let mut s = String::from(t);
    for shift in [6, 3, 0] {
        let b = (a.perm >> shift) & 7;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn ls_line(a: &Attr, name: &str) -> String {
    format!(
        "{} {:>3} {:>5} {:>5} {:>12} {} {}",
        mode_string(a),
        a.nlink,
        a.uid,
        a.gid,
        a.size,
        a.mtime.sec,
        name
    )
}

pub(crate) async fn ls(g: &Global, p: &str) -> Result<(), String> {
    let c = connect(g).await?;
    let creds = my_creds();
    let a = c.resolve(&creds, p, true).await.map_err(with_path(p))?;
    if a.kind == FileKind::Dir {
        for e in c
            .readdir_all(&creds, a.ino, true)
            .await
            .map_err(with_path(p))?
        {
            if let Some(attr) = &e.attr {
                println!("{}", ls_line(attr, &e.name));
            }
        }
    } else {
        println!("{}", ls_line(&a, p));
    }
    c.close().await.map_err(err)
}

pub(crate) async fn stat(g: &Global, p: &str) -> Result<(), String> {
    let c = connect(g).await?;
    let a = c
        .resolve(&my_creds(), p, false)
        .await
        .map_err(with_path(p))?;
    println!("path: {p}");
    println!("inode: {}", a.ino);
    println!("type: {:?}", a.kind);
    println!("mode: {:04o} ({})", a.perm, mode_string(&a));
    println!("links: {}", a.nlink);
    println!("uid: {} gid: {}", a.uid, a.gid);
    println!("size: {}", a.size);
    println!("mtime: {}.{:09}", a.mtime.sec, a.mtime.nsec);
    println!("ctime: {}.{:09}", a.ctime.sec, a.ctime.nsec);
    if let Some(l) = &a.layout {
        print_layout(l);
    }
    c.close().await.map_err(err)
}

/// A file's layout: stripes, the OSTs of each copy, stale copies.
fn print_layout(l: &rustre_proto::msg::Layout) {
    let count = l.stripe_count() as usize;
    println!("stripe_count: {count}");
    println!("stripe_size: {}", l.stripe_size);
    println!("osts: {}", join(&l.osts[..count.min(l.osts.len())]));
    println!("replicas: {}", l.replicas);
    for r in 1..l.replicas as usize {
        let copy = l.osts.get(r * count..(r + 1) * count).unwrap_or(&[]);
        println!("replica {r} osts: {}", join(copy));
    }
    if !l.stale.is_empty() {
        println!("stale slots: {} (waiting for resync)", join(&l.stale));
    }
    if !l.written.is_empty() {
        let written: Vec<u32> = l.written.iter().collect();
        println!("written stripes: {}", join(&written));
    }
    println!("layout_version: {}", l.version);
}

fn join(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

pub(crate) async fn mkdir(g: &Global, p: &str, parents: bool) -> Result<(), String> {
    let c = connect(g).await?;
    let creds = my_creds();
    let comps = path::components(p);
    let upto = if parents { 1 } else { comps.len() };
    for n in upto..=comps.len() {
        let sub = comps[..n].join("/");
        let (parent, name) = c
            .resolve_parent(&creds, &sub)
            .await
            .map_err(with_path(&sub))?;
        match c.mkdir(&creds, parent, &name, 0o755).await {
            Ok(_) => {}
            Err(rustre_proto::Error::Exists) if parents => {}
            Err(e) => return Err(format!("{sub}: {e}")),
        }
    }
    c.close().await.map_err(err)
}

pub(crate) async fn rm(g: &Global, p: &str) -> Result<(), String> {
    let c = connect(g).await?;
    let creds = my_creds();
    let (parent, name) = c.resolve_parent(&creds, p).await.map_err(with_path(p))?;
    let a = c
        .lookup(&creds, parent, &name)
        .await
        .map_err(with_path(p))?;
    let r = if a.kind == FileKind::Dir {
        c.rmdir(&creds, parent, &name).await
    } else {
        c.unlink(&creds, parent, &name).await
    };
    r.map_err(with_path(p))?;
    c.close().await.map_err(err)
}

pub(crate) async fn setstripe(g: &Global, p: &str, spec: Option<LayoutSpec>) -> Result<(), String> {
    let spec =
        spec.ok_or("give at least one of --stripe-count, --stripe-size, --ost, --replicas")?;
    let c = connect(g).await?;
    let creds = my_creds();
    match c.resolve(&creds, p, true).await {
        Ok(a) if a.kind == FileKind::Dir => c
            .set_dir_layout(&creds, a.ino, Some(spec))
            .await
            .map_err(with_path(p))?,
        Ok(_) => {
            return Err(format!(
                "{p}: exists; a file's layout is fixed when it is created"
            ))
        }
        Err(rustre_proto::Error::NotFound) => {
            let (parent, name) = c.resolve_parent(&creds, p).await.map_err(with_path(p))?;
            c.create(&creds, parent, &name, 0o644, true, Some(spec))
                .await
                .map_err(with_path(p))?;
        }
        Err(e) => return Err(format!("{p}: {e}")),
    }
    c.close().await.map_err(err)
}

pub(crate) async fn getstripe(g: &Global, p: &str) -> Result<(), String> {
    let c = connect(g).await?;
    let creds = my_creds();
    let a = c.resolve(&creds, p, true).await.map_err(with_path(p))?;
    match (&a.layout, a.kind) {
        (Some(l), _) => print_layout(l),
        (None, FileKind::Dir) => match c.get_dir_layout(&creds, a.ino).await.map_err(err)? {
            Some(s) => {
                let count = match s.stripe_count {
                    Some(u32::MAX) => "-1 (all)".to_string(),
                    Some(n) => n.to_string(),
                    None => "default".to_string(),
                };
                println!("stripe_count: {count}");
                println!(
                    "stripe_size: {}",
                    s.stripe_size.map_or("default".into(), |n| n.to_string())
                );
                if let Some(o) = &s.osts {
                    println!("osts: {}", join(o));
                }
                println!(
                    "replicas: {}",
                    s.replicas.map_or("default".into(), |n| n.to_string())
                );
            }
            None => println!("{p}: no default layout (cluster defaults apply)"),
        },
        (None, _) => println!("{p}: has no layout"),
    }
    c.close().await.map_err(err)
}
