//! Threads. SIP signalling runs on a tokio runtime of its own, and the API's threads
//! run at a lower OS priority (nice 10), so a flood of expensive HTTP or GraphQL work
//! costs API latency, never phone registrations or call setup: a SIP thread that wakes
//! preempts API work at once instead of waiting for its time slice. Database
//! connections come in two lanes as well (see [`crate::store::Store`]): the SIP threads
//! take theirs from a pool the API cannot exhaust.

use std::cell::Cell;

/// How far below normal the API's threads run (nice value, 0–19).
const API_NICE: i32 = 10;

thread_local! {
    static SIP_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Whether the current thread is one of the SIP runtime's.
pub fn on_sip_thread() -> bool {
    SIP_THREAD.get()
}

/// The runtime for the API (HTTP, GraphQL, websockets, background upkeep), at lower
/// priority.
pub fn api() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("api")
        .on_thread_start(|| set_nice(API_NICE))
        .build()
}

/// The runtime for SIP transports, transactions and applications, at normal priority.
/// Its threads exist from here on; blocking threads it starts later inherit its
/// priority.
pub fn sip() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sip")
        .on_thread_start(|| {
            SIP_THREAD.set(true);
            set_nice(0);
        })
        .build()
}

/// Puts the calling thread (the one that drives the API runtime's main future) at the
/// API's priority. Call it after [`sip`] built its threads: new threads inherit it.
pub fn lower_current_thread() {
    set_nice(API_NICE);
}

/// Sets this thread's nice value. Raising priority back (0 after 10) needs privileges
/// that a service may lack: then it stays where it is, which only costs SIP its edge.
#[cfg(target_os = "linux")]
fn set_nice(nice: i32) {
    // SAFETY: gettid and setpriority take and return plain integers; on Linux,
    // PRIO_PROCESS with a thread id changes only that thread.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice);
    }
}

#[cfg(not(target_os = "linux"))]
fn set_nice(_nice: i32) {}
