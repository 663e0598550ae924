//! A headless Chromium driven over the DevTools protocol through a pipe
//! (`--remote-debugging-pipe`: commands in on file descriptor 3, answers
//! and events out on 4, each a JSON document ended by a NUL byte), for
//! tests that click, wait for a page's work, download and screenshot. No
//! WebSocket, no extra crate but `libc` (to place the pipe's ends).

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A running browser and one page of it.
pub struct Browser {
    child: Child,
    commands: std::io::PipeWriter,
    messages: Receiver<Value>,
    next_id: u64,
    /// The page's session, once [`Browser::open`] has attached to it.
    session: Option<String>,
    /// Every event received so far, in order.
    pub events: Vec<Value>,
}

impl Browser {
    /// Starts headless Chromium `bin` with a fresh profile in `profile`.
    pub fn launch(bin: &Path, profile: &Path) -> Browser {
        let (to_chromium, commands) = std::io::pipe().unwrap();
        let (from_chromium, out) = std::io::pipe().unwrap();
        let (cmd_fd, out_fd) = (to_chromium.as_raw_fd(), out.as_raw_fd());
        let mut command = Command::new(bin);
        command
            .args(super::common::HEADLESS_CHROMIUM)
            .args(["--remote-debugging-pipe", "--window-size=1280,1400"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // Copies above 10 first, so that neither end is overwritten
                // by the other; dup2 leaves 3 and 4 open across exec.
                let (a, b) = (
                    libc::fcntl(cmd_fd, libc::F_DUPFD, 10),
                    libc::fcntl(out_fd, libc::F_DUPFD, 10),
                );
                if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{}: cannot start: {e}", bin.display()));
        drop((to_chromium, out));
        let (tx, messages) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(from_chromium);
            let mut buf = Vec::new();
            while reader.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
                buf.pop();
                if let Ok(v) = serde_json::from_slice(&buf) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
                buf.clear();
            }
        });
        Browser {
            child,
            commands,
            messages,
            next_id: 0,
            session: None,
            events: Vec::new(),
        }
    }

    /// Sends `method` (to the page once attached, unless `browser_wide`)
    /// and waits for its result; panics on an error answer.
    fn call(&mut self, method: &str, params: Value, browser_wide: bool) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let (false, Some(s)) = (browser_wide, &self.session) {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .expect("writing to chromium");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(v) if v["id"] == json!(id) => {
                    assert!(v.get("error").is_none(), "{method}: {v}");
                    return v["result"].clone();
                }
                Ok(v) => self.events.push(v),
                Err(RecvTimeoutError::Timeout) => panic!("{method}: no answer in 60 s"),
                Err(RecvTimeoutError::Disconnected) => panic!("{method}: chromium is gone"),
            }
        }
    }

    /// Sends a browser-wide command.
    pub fn browser(&mut self, method: &str, params: Value) -> Value {
        self.call(method, params, true)
    }

    /// Sends a command to the page.
    pub fn page(&mut self, method: &str, params: Value) -> Value {
        self.call(method, params, false)
    }

    /// Opens a page, listens to its console and errors, then goes to `url`.
    pub fn open(&mut self, url: &str) {
        let target = self.browser("Target.createTarget", json!({"url": "about:blank"}));
        let attached = self.browser(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        self.session = attached["sessionId"].as_str().map(String::from);
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            self.page(domain, json!({}));
        }
        self.page("Page.navigate", json!({"url": url}));
    }

    /// The value of a JavaScript expression on the page.
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.page(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    /// Waits `d`, keeping the events that arrive.
    pub fn wait(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while let Ok(v) = self
            .messages
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.events.push(v);
        }
    }

    /// The console messages, exceptions and error or warning log entries seen.
    pub fn console(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| match e["method"].as_str() {
                Some("Runtime.consoleAPICalled" | "Runtime.exceptionThrown") => true,
                Some("Log.entryAdded") => e["params"]["entry"]["level"] != json!("verbose"),
                _ => false,
            })
            .map(|e| e["params"].to_string())
            .collect()
    }

    /// Chooses `files` in the page's file input `id`, as a user would.
    pub fn choose_files(&mut self, id: &str, files: &[&Path]) {
        let input = self.page(
            "Runtime.evaluate",
            json!({"expression": format!("document.getElementById('{id}')")}),
        );
        let paths: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        self.page(
            "DOM.setFileInputFiles",
            json!({"objectId": input["result"]["objectId"], "files": paths}),
        );
    }

    /// A mouse stroke through `points` (CSS pixels of the page).
    pub fn stroke(&mut self, points: &[(f64, f64)]) {
        let last = points.len() - 1;
        for (i, &(x, y)) in points.iter().enumerate() {
            let kind = match i {
                0 => "mousePressed",
                i if i == last => "mouseReleased",
                _ => "mouseMoved",
            };
            self.page(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "buttons": 1, "clickCount": 1}),
            );
        }
    }

    /// A PNG of the page as it looks now.
    pub fn screenshot(&mut self) -> Vec<u8> {
        let shot = self.page("Page.captureScreenshot", json!({"format": "png"}));
        base64_decode(shot["data"].as_str().expect("screenshot data"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64, as the protocol sends binary data.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &d)| n | (d as u32) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
