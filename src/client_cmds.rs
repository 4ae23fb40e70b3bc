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
    /// `--admin-secret-file` (or `RUSTRE_ADMIN_SECRET_FILE`), if given.
    pub admin_secret_file: Option<PathBuf>,
}

impl Global {
    /// The secret file to use: the one given, else the default.
    pub(crate) fn secret_path(&self) -> PathBuf {
        auth::secret_file_or_default(self.secret_file.as_deref())
    }

    /// The cluster secret, from the secret file, with the admin secret when
    /// `--admin-secret-file` names one (clients then prove it on every connection; an MDS
    /// then requires it of administrators' operations).
    pub(crate) fn key(&self) -> Result<ClusterKey, String> {
        let key = ClusterKey::load(&self.secret_path()).map_err(|e| e.to_string())?;
        match &self.admin_secret_file {
            None => Ok(key),
            Some(p) => {
                let admin = ClusterKey::load(p).map_err(|e| format!("admin {e}"))?;
                Ok(key.with_admin(&admin))
            }
        }
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn with_path(path: &str) -> impl Fn(rustre_proto::Error) -> String + '_ {
    move |e| format!("{path}: {e}")
}

/// The calling user's credentials.
pub(crate) fn my_creds() -> Creds {
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

pub(crate) fn human(bytes: u64) -> String {
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

pub(crate) async fn status(g: &Global, json: bool) -> Result<(), String> {
    let map = admin::cluster_map(&g.mgs, &g.cluster, &g.key()?)
        .await
        .map_err(|e| format!("cannot reach the MGS at {}: {e}", g.mgs))?;
    let stuck = stuck_copies(g).await;
    if json {
        let osts: Vec<_> = map
            .osts
            .iter()
            .map(|o| {
                let c = o.capacity;
                serde_json::json!({
                    "index": o.index,
                    "addr": o.addr,
                    "state": state(o.state),
                    "size_bytes": c.total_bytes,
                    "used_bytes": c.total_bytes.saturating_sub(c.free_bytes),
                    "avail_bytes": c.avail_bytes,
                })
            })
            .collect();
        let mds: Vec<_> = map
            .mds
            .iter()
            .map(|m| serde_json::json!({"addr": m.addr, "state": state(m.state)}))
            .collect();
        return print_json(&serde_json::json!({
            "cluster": map.cluster_name,
            "epoch": map.epoch,
            "mgs": {"addr": g.mgs, "state": "up"},
            "mds": mds,
            "osts": osts,
            "resync_stuck": stuck.copies,
            "resync_unknown": stuck.unknown,
        }));
    }
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
    for s in &stuck.copies {
        println!(
            "resync stuck: inode {} copy slot {} on OST{:04}: {} ({} attempts, MDS {})",
            s["ino"],
            s["slot"],
            s["ost"].as_u64().unwrap_or_default(),
            s["error"].as_str().unwrap_or_default(),
            s["attempts"],
            s["mds"].as_str().unwrap_or_default()
        );
    }
    for u in &stuck.unknown {
        println!("resync: {u}");
    }
    if stuck.copies.is_empty() && stuck.unknown.is_empty() {
        println!("resync: no copy stuck");
    }
    Ok(())
}

/// Prints `v` as pretty JSON on stdout.
pub(crate) fn print_json(v: &serde_json::Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(v).map_err(err)?;
    println!("{text}");
    Ok(())
}

/// The copies resync cannot refill, as every MDS reports them, and the MDS (or the
/// cluster) that could not be asked, with why.
struct StuckCopies {
    copies: Vec<serde_json::Value>,
    unknown: Vec<String>,
}

async fn stuck_copies(g: &Global) -> StuckCopies {
    let mut out = StuckCopies {
        copies: Vec::new(),
        unknown: Vec::new(),
    };
    let c = match connect(g).await {
        Ok(c) => c,
        Err(e) => {
            out.unknown.push(format!("unknown ({e})"));
            return out;
        }
    };
    for (mds, answer) in c.stuck_copies().await {
        match answer {
            Ok(list) => out.copies.extend(list.into_iter().map(|s| {
                serde_json::json!({
                    "ino": s.ino,
                    "slot": s.slot,
                    "ost": s.ost,
                    "error": s.error,
                    "attempts": s.attempts,
                    "mds": mds,
                })
            })),
            Err(e) => out.unknown.push(format!("MDS {mds} did not answer: {e}")),
        }
    }
    let _ = c.close().await;
    out
}

fn state(s: NodeState) -> &'static str {
    match s {
        NodeState::Up => "up",
        NodeState::Down => "down",
    }
}

pub(crate) async fn df(g: &Global, json: bool) -> Result<(), String> {
    let c = connect(g).await?;
    let s = c.statfs(&my_creds()).await.map_err(err)?;
    let map = c.cluster_map();
    let row = |name: String, up: bool, total: u64, free: u64, avail: u64| {
        let used = total.saturating_sub(free);
        serde_json::json!({
            "target": name,
            "up": up,
            "size_bytes": total,
            "used_bytes": used,
            "avail_bytes": avail,
            // As df(1): of what users can have (used and available; a reserve is neither),
            // rounded up.
            "use_percent": match used + avail {
                0 => 0,
                users => (used * 100).div_ceil(users),
            },
        })
    };
    let mut rows: Vec<serde_json::Value> = map
        .osts
        .iter()
        .map(|o| {
            let c = o.capacity;
            let name = format!("OST{:04}", o.index);
            row(
                name,
                o.state == NodeState::Up,
                c.total_bytes,
                c.free_bytes,
                c.avail_bytes,
            )
        })
        .collect();
    let fs = s.capacity;
    rows.push(row(
        "filesystem".into(),
        true,
        fs.total_bytes,
        fs.free_bytes,
        fs.avail_bytes,
    ));
    c.close().await.map_err(err)?;
    if json {
        return print_json(&serde_json::json!({"targets": rows, "inodes_used": s.files}));
    }
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>5}",
        "target", "size", "used", "avail", "use%"
    );
    for r in &rows {
        let n = |k: &str| r[k].as_u64().unwrap_or_default();
        let down = if r["up"].as_bool() == Some(false) {
            "*"
        } else {
            ""
        };
        println!(
            "{:<12} {:>10} {:>10} {:>10} {:>4}%",
            format!("{}{down}", r["target"].as_str().unwrap_or_default()),
            human(n("size_bytes")),
            human(n("used_bytes")),
            human(n("avail_bytes")),
            n("use_percent")
        );
    }
    println!("inodes used {}", s.files);
    Ok(())
}

pub(crate) async fn put(
    g: &Global,
    local: &Path,
    dest: &str,
    spec: Option<LayoutSpec>,
) -> Result<(), String> {
    let src = tokio::fs::File::open(local)
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
    let size = src.metadata().await.map_or(0, |m| m.len());
    let bar = crate::progress::bytes(size, "put");
    let mut src = bar.wrap_async_read(src);
    let copied = c
        .put(&creds, parent, &name, 0o644, spec, &mut src)
        .await
        .map_err(|e| match e {
            TransferError::Local(e) => format!("{}: {e}", local.display()),
            TransferError::Cluster(e) => format!("{dest}: {e}"),
        });
    bar.finish_and_clear();
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
    let mut file = tokio::fs::File::create(local)
        .await
        .map_err(|e| format!("{}: {e}", local.display()))?;
    let bar = crate::progress::bytes(a.size, "get");
    let mut out = bar.wrap_async_write(&mut file);
    let copied = c.get(&creds, a.ino, &mut out).await.map_err(|e| match e {
        TransferError::Local(e) => format!("{}: {e}", local.display()),
        TransferError::Cluster(e) => format!("{src}: {e}"),
    });
    bar.finish_and_clear();
    drop(out);
    c.close().await.map_err(err)?;
    copied?;
    file.sync_all()
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

pub(crate) async fn stat(g: &Global, p: &str, json: bool) -> Result<(), String> {
    let c = connect(g).await?;
    let a = c
        .resolve(&my_creds(), p, false)
        .await
        .map_err(with_path(p))?;
    c.close().await.map_err(err)?;
    if json {
        return print_json(&serde_json::json!({
            "path": p,
            "inode": a.ino,
            "type": format!("{:?}", a.kind),
            "mode": format!("{:04o}", a.perm),
            "mode_string": mode_string(&a),
            "links": a.nlink,
            "uid": a.uid,
            "gid": a.gid,
            "size": a.size,
            "atime": time_json(a.atime),
            "mtime": time_json(a.mtime),
            "ctime": time_json(a.ctime),
            "layout": a.layout.as_ref().map(layout_json),
        }));
    }
    println!("path: {p}");
    println!("inode: {}", a.ino);
    println!("type: {:?}", a.kind);
    println!("mode: {:04o} ({})", a.perm, mode_string(&a));
    println!("links: {}", a.nlink);
    println!("uid: {} gid: {}", a.uid, a.gid);
    println!("size: {}", a.size);
    println!("mtime: {}", local_time(a.mtime));
    println!("ctime: {}", local_time(a.ctime));
    if let Some(l) = &a.layout {
        print_layout(l);
    }
    Ok(())
}

/// A time as JSON: seconds and nanoseconds since the epoch, and the local time.
fn time_json(t: rustre_proto::msg::Timestamp) -> serde_json::Value {
    serde_json::json!({"sec": t.sec, "nsec": t.nsec, "local": local_time(t)})
}

/// `t` in the local time zone, as `date` prints it by default in ISO form
/// (`2026-12-04 23:40:01.123456789 +0000`).
fn local_time(t: rustre_proto::msg::Timestamp) -> String {
    let secs = t.sec as libc::time_t;
    // SAFETY: localtime_r fills the zeroed struct from a valid time; checked below.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if !ok {
        return format!("{}.{:09}", t.sec, t.nsec);
    }
    let off = tm.tm_gmtoff / 60;
    let sign = if off < 0 { '-' } else { '+' };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:09} {sign}{:02}{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        t.nsec,
        off.abs() / 60,
        off.abs() % 60
    )
}

/// A file's layout as JSON (the fields [`print_layout`] prints).
fn layout_json(l: &rustre_proto::msg::Layout) -> serde_json::Value {
    let count = l.stripe_count() as usize;
    let copies: Vec<&[u32]> = (0..l.replicas as usize)
        .map(|r| l.osts.get(r * count..(r + 1) * count).unwrap_or(&[]))
        .collect();
    serde_json::json!({
        "stripe_count": count,
        "stripe_size": l.stripe_size,
        "replicas": l.replicas,
        "copies_osts": copies,
        "stale_slots": l.stale,
        "written_stripes": l.written.iter().collect::<Vec<u32>>(),
        "layout_version": l.version,
    })
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

pub(crate) async fn getstripe(g: &Global, p: &str, json: bool) -> Result<(), String> {
    let c = connect(g).await?;
    let creds = my_creds();
    let a = c.resolve(&creds, p, true).await.map_err(with_path(p))?;
    let dir_spec = match (&a.layout, a.kind) {
        (None, FileKind::Dir) => c.get_dir_layout(&creds, a.ino).await.map_err(err)?,
        _ => None,
    };
    c.close().await.map_err(err)?;
    if json {
        let v = match (&a.layout, a.kind) {
            (Some(l), _) => serde_json::json!({"path": p, "layout": layout_json(l)}),
            (None, FileKind::Dir) => serde_json::json!({
                "path": p,
                "default_layout": dir_spec.map(|s| serde_json::json!({
                    "stripe_count": s.stripe_count.map(|n| if n == u32::MAX { -1 } else { i64::from(n) }),
                    "stripe_size": s.stripe_size,
                    "osts": s.osts,
                    "replicas": s.replicas,
                })),
            }),
            (None, _) => serde_json::json!({"path": p, "layout": null}),
        };
        return print_json(&v);
    }
    match (&a.layout, a.kind) {
        (Some(l), _) => print_layout(l),
        (None, FileKind::Dir) => match dir_spec {
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
    Ok(())
}
