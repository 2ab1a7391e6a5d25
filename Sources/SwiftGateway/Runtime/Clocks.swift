#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// Time as the runtime reads and writes it: clocks that never jump, and durations in log lines.

/// Nanoseconds on a clock that never jumps (the same in every process).
func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

/// Seconds on a clock that never jumps.
func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// Microseconds since the epoch, for what is shown as a date (a worker's start on the scoreboard).
func realtimeMicroseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1_000
}

/// A duration as log lines write it, to a tenth of a second: `1.25` → `1.3s`.
func formatSeconds(_ seconds: Double) -> String {
    let tenths = (seconds * 10).rounded() / 10
    return "\(tenths)s"
}
