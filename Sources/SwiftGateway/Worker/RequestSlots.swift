import Dispatch

/// The worker's `threads=N` request slots: a connection is accepted only after one is taken,
/// so while all are busy new connections wait in the kernel backlog for a sibling.
struct RequestSlots: Sendable {
    private let semaphore: DispatchSemaphore

    init(count: Int) { self.semaphore = DispatchSemaphore(value: count) }

    /// Takes a slot, waiting at most `timeout` seconds; false if none became free.
    func take(timeout: Double) -> Bool {
        self.semaphore.wait(timeout: .now() + .milliseconds(Int(timeout * 1000))) == .success
    }

    func release() { self.semaphore.signal() }
}
