//! The README's launch lines run as written (issue 20, item 6).
//!
//! Every `gst-launch-1.0` command in the README's ```sh blocks is extracted
//! (`\`-continued lines joined, trailing `# comments` dropped) and run with
//! `sh -c` from the project root, so `../shared/...` and `$PWD` resolve as they
//! do for a reader, under a private Xvfb with the sink the line names
//! (`autovideosink` picks an X sink there). `GST_PLUGIN_PATH` is the directory
//! holding `libgstnawqsr.so` — the README's `export GST_PLUGIN_PATH=...` line is
//! not run, its role is played by the test.
//!
//! A line is bounded without rewriting its elements: it runs with gst-launch's
//! own `-e` (EOS on interrupt) for at most `BUDGET`. A line that ends by itself
//! within it must exit 0 with no `ERROR:`; one still running then (videotestsrc
//! never ends, a 10 s clip through the network is slow on a small machine) gets
//! SIGINT and must have reached PLAYING (gst-launch prints "Setting pipeline to
//! PLAYING" after preroll, i.e. after caps negotiated and a frame reached the
//! sink), shown no `ERROR:`, and shut down in order with exit 0.
//!
//! Skipped with a one-line notice when ../shared or Xvfb is absent.
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[macro_use]
mod support;

const README: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));

/// How long a line may run before it is interrupted.
const BUDGET: Duration = Duration::from_secs(12);
/// How long an interrupted line may take to drain its EOS and exit.
const GRACE: Duration = Duration::from_secs(15);

/// The commands of the README's ```sh blocks: continuation lines joined,
/// comment lines and trailing comments dropped, empty lines skipped.
fn sh_commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in text.lines() {
        let t = line.trim();
        if !in_sh {
            in_sh = t == "```sh" || t == "```bash" || t == "```shell";
            continue;
        }
        if t.starts_with("```") {
            in_sh = false;
            pending.clear();
            continue;
        }
        let code = strip_comment(t);
        if let Some(head) = code.strip_suffix('\\') {
            pending.push_str(head.trim());
            pending.push(' ');
            continue;
        }
        pending.push_str(code.trim());
        let cmd = std::mem::take(&mut pending).trim().to_string();
        if !cmd.is_empty() {
            out.push(cmd);
        }
    }
    out
}

/// `line` without a `#` comment that starts a word outside quotes.
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return line[..i].trim_end(),
            _ => {}
        }
        prev = c;
    }
    line
}

/// The README's `gst-launch-1.0` lines, and the value its
/// `export GST_PLUGIN_PATH=...` line gives (if any).
fn launch_lines(text: &str) -> (Vec<String>, Option<String>) {
    let mut lines = Vec::new();
    let mut plugin_path = None;
    for cmd in sh_commands(text) {
        if let Some(rest) = cmd.strip_prefix("export ") {
            if let Some(v) = rest.trim().strip_prefix("GST_PLUGIN_PATH=") {
                plugin_path = Some(v.to_string());
            }
        } else if cmd.starts_with("gst-launch-1.0 ") {
            lines.push(cmd);
        }
    }
    (lines, plugin_path)
}

/// The line as run: gst-launch's `-e` added (so SIGINT ends it with an orderly
/// EOS), and a relative `filesink location=` — an output file, `out.mp4` in the
/// README — pointed into `tmp` so the test writes nothing into the project.
/// (The cwd stays the project root, which the relative `../shared` inputs need.)
/// Returns the command and the output files to check.
fn as_run(line: &str, tmp: &Path) -> (String, Vec<PathBuf>) {
    let rest = line
        .strip_prefix("gst-launch-1.0 ")
        .expect("a gst-launch-1.0 line");
    let mut outputs = Vec::new();
    let mut words = Vec::new();
    let mut after_filesink = false;
    for w in rest.split(' ') {
        let mut w = w.to_string();
        if after_filesink {
            if let Some(loc) = w.strip_prefix("location=") {
                if !loc.starts_with('/') && !loc.starts_with('$') && !loc.starts_with("../") {
                    let p = tmp.join(loc);
                    w = format!("location={}", p.display());
                    outputs.push(p);
                }
            }
        }
        if w == "filesink" {
            after_filesink = true;
        } else if w == "!" {
            after_filesink = false;
        }
        words.push(w);
    }
    (
        format!("exec gst-launch-1.0 -e {}", words.join(" ")),
        outputs,
    )
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory effects; a stale pid gives ESRCH, ignored.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// A private X server for the test's lifetime (`-noreset`: without it Xvfb
/// regenerates when its last client leaves, and the next line may find no
/// display for a moment). SIGTERM (Xvfb then removes its
/// lock and socket) and reaped on drop, also when an assertion fails.
struct Xvfb {
    child: Child,
    display: u32,
}

impl Xvfb {
    fn start() -> Xvfb {
        let mut n = 90 + std::process::id() % 50;
        while Path::new(&format!("/tmp/.X{n}-lock")).exists()
            || Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
        {
            n += 1;
        }
        let child = Command::new("Xvfb")
            .args([
                &format!(":{n}"),
                "-nolisten",
                "tcp",
                "-noreset",
                "-screen",
                "0",
                "1920x1200x24",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let mut x = Xvfb { child, display: n };
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
        let t0 = Instant::now();
        while !socket.exists() {
            if let Some(st) = x.child.try_wait().unwrap() {
                panic!("Xvfb :{n} exited at start: {st}");
            }
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "Xvfb :{n} not up after 15 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        x
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        signal(self.child.id() as i32, libc::SIGTERM);
        let t0 = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() {
            if t0.elapsed() > Duration::from_secs(5) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A running line in its own process group, killed (the whole group) on drop
/// if it has not been reaped.
struct Running(Child, bool);

impl Drop for Running {
    fn drop(&mut self) {
        if !self.1 {
            signal(-(self.0.id() as i32), libc::SIGKILL);
            let _ = self.0.wait();
        }
    }
}

impl Running {
    fn wait_for(&mut self, d: Duration) -> Option<ExitStatus> {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.0.try_wait().unwrap() {
                self.1 = true;
                return Some(st);
            }
            if t0.elapsed() >= d {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs one README line; `Err` says why it failed, with its output's tail.
fn run_line(
    line: &str,
    root: &Path,
    plugin_dir: &Path,
    display: u32,
    tmp: &Path,
) -> Result<String, String> {
    let (cmd, outputs) = as_run(line, tmp);
    let log_path = tmp.join("log.txt");
    let log = File::create(&log_path).unwrap();
    let t0 = Instant::now();
    let child = Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .current_dir(root)
        .env("PWD", root)
        .env("DISPLAY", format!(":{display}"))
        .env("GST_PLUGIN_PATH", plugin_dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("run sh -c");
    let mut running = Running(child, false);
    let (status, interrupted) = match running.wait_for(BUDGET) {
        Some(st) => (Some(st), false),
        None => {
            signal(-(running.0.id() as i32), libc::SIGINT);
            (running.wait_for(GRACE), true)
        }
    };
    let elapsed = t0.elapsed();
    drop(running);
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(15).collect();
    let tail: String = tail.into_iter().rev().collect::<Vec<_>>().join("\n    ");
    let fail = |why: String| {
        Err(format!(
            "{why}\n  line: {line}\n  ran:  {cmd}\n  output (last lines):\n    {tail}"
        ))
    };
    let how = if interrupted {
        format!("reached PLAYING, interrupted after {:.0?}", BUDGET)
    } else {
        format!("ended by itself after {elapsed:.1?}")
    };
    if text.contains("ERROR:") {
        return fail(format!("an ERROR was reported ({how})"));
    }
    let Some(status) = status else {
        return fail(format!(
            "still running {GRACE:?} after SIGINT (no orderly EOS)"
        ));
    };
    if interrupted && !text.contains("Setting pipeline to PLAYING") {
        return fail(format!("did not reach PLAYING within {BUDGET:?}"));
    }
    if !status.success() {
        return fail(format!("exited with {status} ({how})"));
    }
    for p in &outputs {
        let len = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        if len == 0 {
            return fail(format!("output {} is missing or empty", p.display()));
        }
        let _ = std::fs::remove_file(p);
    }
    Ok(how)
}

/// The directory to give as `GST_PLUGIN_PATH`: one holding the freshest
/// `libgstnawqsr.so`. `cargo test` builds the plugin's cdylib (it is a
/// dependency of this package, built with all its crate types) but leaves it
/// in target/release/deps/; only `cargo build` copies it up to
/// target/release/, where the README points. So target/release/libgstnawqsr.so
/// may be stale or absent while deps/ holds the one built from these sources:
/// then the test links that one into a private directory (deps/ itself is full
/// of other shared objects GStreamer would try to load).
fn plugin_dir(tmp: &Path) -> PathBuf {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_nawqsr"))
        .parent()
        .unwrap()
        .to_path_buf();
    let so = support::fresh_plugin(&bin_dir).unwrap_or_else(|| {
        panic!(
            "no libgstnawqsr.so in {} (nor in its deps/): build the plugin with \
             `cargo build --release --workspace` before this test",
            bin_dir.display()
        )
    });
    if so.parent() == Some(bin_dir.as_path()) {
        return bin_dir;
    }
    eprintln!(
        "note: {}/libgstnawqsr.so is older than the plugin cargo built for this test (deps/); testing the fresh one",
        bin_dir.display()
    );
    link_plugin(&so, tmp)
}

fn link_plugin(so: &Path, tmp: &Path) -> PathBuf {
    let dir = tmp.join("plugin");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(so, dir.join("libgstnawqsr.so")).unwrap();
    dir
}

#[test]
fn extraction_joins_continuations_and_drops_comments() {
    let text = "intro\n```sh\n# a comment\nexport GST_PLUGIN_PATH=$PWD/x\n\
                gst-launch-1.0 a \\\n  ! b c=\"d # e\" # trailing\ncargo build\n```\n\
                ```\ngst-launch-1.0 not-sh\n```\n";
    let (lines, path) = launch_lines(text);
    assert_eq!(lines, vec!["gst-launch-1.0 a ! b c=\"d # e\"".to_string()]);
    assert_eq!(path.as_deref(), Some("$PWD/x"));
    let (cmd, outs) = as_run(
        "gst-launch-1.0 filesrc location=../in.mp4 ! x264enc ! filesink location=out.mp4",
        Path::new("/t"),
    );
    assert_eq!(
        cmd,
        "exec gst-launch-1.0 -e filesrc location=../in.mp4 ! x264enc ! filesink location=/t/out.mp4"
    );
    assert_eq!(outs, vec![PathBuf::from("/t/out.mp4")]);
}

#[test]
fn readme_launch_lines_run_as_written() {
    let (lines, readme_plugin_path) = launch_lines(README);
    assert!(
        lines.len() >= 5,
        "expected at least 5 gst-launch-1.0 lines in README.md, found {}: {lines:#?}",
        lines.len()
    );

    let _shared = require_shared!();
    if !on_path("Xvfb") {
        eprintln!("skipping: Xvfb not found (the README lines need a display)");
        return;
    }
    if !on_path("gst-launch-1.0") {
        eprintln!("skipping: gst-launch-1.0 not found");
        return;
    }

    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .canonicalize()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let plugin_dir = plugin_dir(tmp.path());
    if let Some(p) = &readme_plugin_path {
        let readme_dir = root.join(p.trim_start_matches("$PWD/"));
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_nawqsr")).parent().unwrap();
        if readme_dir.canonicalize().ok() != bin_dir.canonicalize().ok() {
            eprintln!(
                "note: README's GST_PLUGIN_PATH={p} is {}, but `cargo build` puts the plugin in {}",
                readme_dir.display(),
                bin_dir.display()
            );
        }
    }

    let x = Xvfb::start();
    let t0 = Instant::now();
    let mut failures = Vec::new();
    for line in &lines {
        match run_line(line, &root, &plugin_dir, x.display, tmp.path()) {
            Ok(how) => eprintln!("ok ({how}): {line}"),
            Err(e) => {
                eprintln!("FAILED: {line}");
                failures.push(e);
            }
        }
    }
    eprintln!("{} README lines in {:.1?}", lines.len(), t0.elapsed());
    drop(x);
    assert!(
        failures.is_empty(),
        "{} of {} README launch lines failed:\n\n{}",
        failures.len(),
        lines.len(),
        failures.join("\n\n")
    );
}
