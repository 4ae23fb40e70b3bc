//! `rustre gen-docs DIR` (hidden): the man pages (`DIR/man/rustre.1` and one
//! `rustre-SUBCOMMAND.1` per subcommand, by clap_mangen) and the shell completions
//! (`DIR/completions/rustre.bash`, `_rustre` for zsh, `rustre.fish`, by clap_complete),
//! all generated from the command-line definition, for the Debian package
//! (`[package.metadata.deb]` in Cargo.toml; scripts/build-deb.sh runs it).

use std::path::Path;

use clap::Command;
use clap_complete::Shell;

/// The shells completions are written for, with their file names.
const SHELLS: [(Shell, &str); 3] = [
    (Shell::Bash, "rustre.bash"),
    (Shell::Zsh, "_rustre"),
    (Shell::Fish, "rustre.fish"),
];

/// Writes every man page and completion file under `dir`.
pub(crate) fn write_all(cmd: Command, dir: &Path) -> Result<(), String> {
    let err = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    let man = dir.join("man");
    let comp = dir.join("completions");
    for d in [&man, &comp] {
        std::fs::create_dir_all(d).map_err(|e| err(d, e))?;
    }
    let mut cmd = cmd;
    cmd.build();
    write_man(&cmd, &man, "rustre").map_err(|e| err(&man, e))?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        // clap names take 'static strings; this command runs once and exits.
        let name: &'static str = Box::leak(format!("rustre-{}", sub.get_name()).into_boxed_str());
        write_man(&sub.clone().name(name), &man, name).map_err(|e| err(&man, e))?;
    }
    for (shell, file) in SHELLS {
        let path = comp.join(file);
        let mut f = std::fs::File::create(&path).map_err(|e| err(&path, e))?;
        clap_complete::generate(shell, &mut cmd.clone(), "rustre", &mut f);
    }
    Ok(())
}

fn write_man(cmd: &Command, dir: &Path, name: &str) -> std::io::Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    std::fs::write(dir.join(format!("{name}.1")), out)
}
