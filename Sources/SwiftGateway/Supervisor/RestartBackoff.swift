/// How long to wait before starting a replacement for a process that exited.
///
/// A process that lived at least `stableAfter` seconds is replaced at once; one that keeps
/// dying young waits twice as long each time, up to `maximum`, so a broken program cannot
/// make its parent spin.
struct RestartBackoff: Sendable, Equatable {
    var initial: Double = 0.1
    var maximum: Double = 30
    var stableAfter: Double = 10
    private(set) var current: Double = 0

    init(initial: Double = 0.1, maximum: Double = 30, stableAfter: Double = 10) {
        self.initial = initial
        self.maximum = maximum
        self.stableAfter = stableAfter
    }

    /// The delay before the next start, given how long the last process lived.
    mutating func delay(afterLifetime lifetime: Double) -> Double {
        if lifetime >= self.stableAfter {
            self.current = 0
        } else {
            self.current = self.current == 0 ? self.initial : min(self.current * 2, self.maximum)
        }
        return self.current
    }
}
