//! Python packages from PyPI for fidelity tests (huggingface_hub, gguf, safetensors): one
//! virtualenv per set of packages, made on first use under a folder the caller names (the
//! target folder, never the home folder) and shared by every test binary after that.
//!
//! Without Python or PyPI a test skips with a message, unless the variable it names is `1`
//! (CI sets them), which turns the skip into a failure.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A ready virtualenv.
#[derive(Debug, Clone)]
pub struct PythonEnv {
    root: PathBuf,
    home: PathBuf,
}

impl PythonEnv {
    /// The virtualenv under `cache` holding `packages` (pip names), made or repaired on first
    /// use; `imports` are the module names that must import for it to count as ready.
    ///
    /// Test binaries run at once, so making it is serialised by a lock file beside it.
    pub fn with_packages(
        cache: &Path,
        packages: &[&str],
        imports: &[&str],
    ) -> Result<Self, String> {
        let dir = cache.join(format!("py-{}", packages.join("-")));
        let env = Self {
            root: dir.join("venv"),
            home: dir.join("home"),
        };
        std::fs::create_dir_all(&env.home).map_err(|e| format!("{}: {e}", dir.display()))?;
        let lock = File::create(dir.join("lock")).map_err(|e| format!("{}: {e}", dir.display()))?;
        lock.lock()
            .map_err(|e| format!("locking {}: {e}", dir.display()))?;
        if !env.imports(imports) {
            env.run(Command::new("python3").arg("-m").arg("venv").arg(&env.root))
                .map_err(|e| format!("python3 -m venv: {e}"))?;
            env.run(
                Command::new(env.python())
                    .args(["-m", "pip", "install", "--quiet"])
                    .args(packages),
            )
            .map_err(|e| format!("pip install {} (offline?): {e}", packages.join(" ")))?;
        }
        Ok(env)
    }

    /// The virtualenv's interpreter.
    pub fn python(&self) -> PathBuf {
        self.root.join("bin/python")
    }

    /// The interpreter as a command, with pip and Python kept out of the real home folder.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(self.python());
        cmd.env("HOME", &self.home)
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1");
        cmd
    }

    /// Runs `cmd` with pip and Python kept out of the real home folder; a non-zero exit is an
    /// error carrying stderr.
    pub fn run(&self, cmd: &mut Command) -> Result<Output, String> {
        let out = cmd
            .env("HOME", &self.home)
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .map_err(|e| format!("{cmd:?} did not start: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{cmd:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(out)
    }

    fn imports(&self, modules: &[&str]) -> bool {
        self.python().exists()
            && Command::new(self.python())
                .arg("-c")
                .arg(format!("import {}", modules.join(", ")))
                .env("HOME", &self.home)
                .status()
                .is_ok_and(|s| s.success())
    }
}

/// Reports a check that could not run: a failure when `require_var` is `1`, else a message on
/// stderr and the test passes.
pub fn skip(require_var: &str, check: &str, reason: &str) {
    if std::env::var_os(require_var).is_some_and(|v| v == "1") {
        panic!("{check} could not run: {reason}");
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!("SKIPPED {check} (set {require_var}=1 to require it): {reason}");
    }
}
