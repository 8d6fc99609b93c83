//! Player keys: from the video window (GStreamer navigation events) and from
//! stdin. On a TTY stdin is put in non-canonical, no-echo mode for the run (so
//! a key acts without Enter; Ctrl-C still raises SIGINT) and restored on drop;
//! from a pipe every byte is a key (`echo q | nawqsr play` quits at once).
use std::io::Read;
use std::sync::mpsc::Sender;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Pause,
    ToggleSr,
    Compare,
    CycleMode,
    Info,
    /// Seek by this many seconds.
    Seek(i64),
    Quit,
}

/// A key from a navigation event's key name (X11 keysym names).
pub fn from_name(name: &str) -> Option<Key> {
    Some(match name {
        "space" | " " => Key::Pause,
        "s" | "S" => Key::ToggleSr,
        "c" | "C" => Key::Compare,
        "m" | "M" => Key::CycleMode,
        "i" | "I" => Key::Info,
        "Left" => Key::Seek(-5),
        "Right" => Key::Seek(5),
        "q" | "Q" | "Escape" => Key::Quit,
        _ => return None,
    })
}

fn from_byte(b: u8) -> Option<Key> {
    match b {
        b' ' => Some(Key::Pause),
        0x1b => Some(Key::Quit),
        b if b.is_ascii_graphic() => from_name(&(b as char).to_string()),
        _ => None,
    }
}

/// Restores the terminal's settings when dropped.
pub struct RawTerminal {
    #[cfg(unix)]
    saved: Option<libc::termios>,
}

impl RawTerminal {
    /// Non-canonical, no-echo stdin when it is a TTY; a no-op otherwise.
    pub fn new() -> RawTerminal {
        #[cfg(unix)]
        {
            if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                return RawTerminal { saved: None };
            }
            // SAFETY: tcgetattr/tcsetattr on fd 0 with a termios we own.
            unsafe {
                let mut t: libc::termios = std::mem::zeroed();
                if libc::tcgetattr(0, &mut t) != 0 {
                    return RawTerminal { saved: None };
                }
                let saved = t;
                t.c_lflag &= !(libc::ICANON | libc::ECHO);
                t.c_cc[libc::VMIN] = 1;
                t.c_cc[libc::VTIME] = 0;
                libc::tcsetattr(0, libc::TCSANOW, &t);
                RawTerminal { saved: Some(saved) }
            }
        }
        #[cfg(not(unix))]
        RawTerminal {}
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(t) = self.saved {
            // SAFETY: restoring the settings read in `new`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
}

/// Whether stdin has a byte ready within `timeout`.
#[cfg(unix)]
fn ready(timeout: Duration) -> bool {
    let mut fds = libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd on the stack.
    unsafe { libc::poll(&mut fds, 1, timeout.as_millis() as i32) > 0 }
}
#[cfg(not(unix))]
fn ready(_: Duration) -> bool {
    false
}

/// Reads keys from stdin on a thread until EOF; `ESC [ C` / `ESC [ D` are the
/// arrows, a lone ESC quits.
pub fn spawn_stdin(tx: Sender<Key>) {
    std::thread::Builder::new()
        .name("nawqsr-keys".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut b = [0u8; 1];
            while let Ok(1) = stdin.read(&mut b) {
                let key = if b[0] == 0x1b && ready(Duration::from_millis(30)) {
                    let mut seq = [0u8; 2];
                    match stdin.read(&mut seq) {
                        Ok(2) if seq[0] == b'[' && seq[1] == b'C' => Some(Key::Seek(5)),
                        Ok(2) if seq[0] == b'[' && seq[1] == b'D' => Some(Key::Seek(-5)),
                        _ => None,
                    }
                } else {
                    from_byte(b[0])
                };
                if let Some(k) = key
                    && tx.send(k).is_err()
                {
                    break;
                }
            }
        })
        .expect("spawn the key reader");
}
