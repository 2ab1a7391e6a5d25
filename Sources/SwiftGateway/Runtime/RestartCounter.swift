/// Why a worker ended other than by a recycle (and was restarted), as the scoreboard counts it;
/// the raw values are those of `enum sg_restart_reason` in `sg_scoreboard.h` (a unit test checks).
enum RestartCounter: Int32, CaseIterable, Sendable {
    /// It exited by itself.
    case exited = 0
    /// A signal the supervisor did not send (a crash).
    case crashed = 1
    /// Killed above 1.5 × memory-limit.
    case memoryKill = 2
    /// Killed: not accepting within startup-timeout.
    case startupTimeout = 3
    /// Killed: its event loop was blocked past request-timeout.
    case blocked = 4

    init(_ reason: ExitReason) {
        if case .signalled = reason { self = .crashed } else { self = .exited }
    }
}
