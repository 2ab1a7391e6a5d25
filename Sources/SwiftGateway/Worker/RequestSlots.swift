import Dispatch
import NIOConcurrencyHelpers

/// The worker's `threads=N` request slots: a connection is accepted only after one is taken,
/// so while all are busy new connections wait in the kernel backlog for a sibling.
struct RequestSlots: Sendable {
    private let semaphore: DispatchSemaphore
    private let busy = NIOLockedValueBox(0)

    init(count: Int) { self.semaphore = DispatchSemaphore(value: count) }

    /// Takes a slot, waiting at most `timeout` seconds; false if none became free.
    func take(timeout: Double) -> Bool {
        guard self.semaphore.wait(timeout: .now() + .milliseconds(Int(timeout * 1000))) == .success else { return false }
        self.busy.withLockedValue { $0 += 1 }
        return true
    }

    func release() {
        self.busy.withLockedValue { $0 -= 1 }
        self.semaphore.signal()
    }

    /// Slots taken and not yet released: requests in flight.
    var busyCount: Int { self.busy.withLockedValue { $0 } }
}
