// rust_names.rs - pprofc test target: Rust (legacy-mangled) symbol demangling.
//
// Thread "rust-worker" blocks in std::io::Read::read on a UnixStream whose
// peer is kept open but never written, inside fixture::Parker::park, called
// from fixture::Parker::run; thread "rust-spinner" burns CPU in
// fixture::Spinner::spin (for CPU profiles). Once the worker is parked the main thread prints
// "ready\n" and sleeps forever.
//
// Build: rustc -O -g --edition 2021 rust_names.rs -o rust_names
// Kept compatible with rustc 1.63 (Debian 12): no std::hint::black_box
// (stable in 1.66), no thread::scope; volatile ops stand in for black_box.

mod fixture {
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    use std::sync::{Arc, Barrier};

    // Deliberately not generic: with the default (legacy) mangling an impl
    // on Parker<R> demangles as "Parker<R>::park", and tests want the plain
    // path rust_names::fixture::Parker::park.
    pub struct Parker {
        stream: UnixStream,
        parked: Arc<Barrier>,
    }

    impl Parker {
        pub fn new(stream: UnixStream, parked: Arc<Barrier>) -> Self {
            Parker { stream, parked }
        }

        #[inline(never)]
        pub fn run(&mut self) -> usize {
            let n = self.park();
            // Using the result after the call keeps park() out of tail
            // position, so run() keeps its own frame.
            unsafe { std::ptr::read_volatile(&n) }
        }

        #[inline(never)]
        pub fn park(&mut self) -> usize {
            let mut buf = [0u8; 16];
            // Tell main we are about to block; nothing is ever written to
            // the peer, so the read below never returns.
            self.parked.wait();
            let n = self.stream.read(&mut buf).unwrap_or(0);
            unsafe { std::ptr::read_volatile(&n) }
        }
    }

    // Burns CPU, so a CPU profile shows a demangled Rust path in -top.
    pub struct Spinner;

    impl Spinner {
        #[inline(never)]
        pub fn spin(mut x: u64) -> u64 {
            loop {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                x = unsafe { std::ptr::read_volatile(&x) };
            }
        }
    }

    // Non-generic entry point so the thread closure stays trivial.
    #[inline(never)]
    pub fn worker(stream: UnixStream, parked: Arc<Barrier>) {
        let mut p = Parker::new(stream, parked);
        let n = p.run();
        unsafe { std::ptr::read_volatile(&n) };
    }
}

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

fn main() {
    // `_peer` stays alive for the whole process so the read never sees EOF.
    let (reader, _peer) = UnixStream::pair().expect("socketpair");
    let parked = Arc::new(Barrier::new(2)); // worker + main
    let p2 = Arc::clone(&parked);
    let _h = thread::Builder::new()
        .name("rust-worker".to_string())
        .spawn(move || fixture::worker(reader, p2))
        .expect("spawn");
    let _s = thread::Builder::new()
        .name("rust-spinner".to_string())
        .spawn(|| fixture::Spinner::spin(1))
        .expect("spawn");
    parked.wait();
    let mut out = std::io::stdout();
    out.write_all(b"ready\n").unwrap();
    out.flush().unwrap();
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}
