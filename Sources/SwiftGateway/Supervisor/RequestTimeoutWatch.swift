/// Which requests the supervisor gives up on (`request-timeout=`), from the start of every
/// running request that the workers publish on the scoreboard.
///
/// A request running `timeout` seconds is cancelled: the worker cancels its task and answers
/// 504 (or aborts a response already begun). One whose slot is still held `stuckAfter` seconds
/// later belongs to a worker that cannot end it (code that ignores cancellation or never
/// suspends): that worker is stuck, and recycled.
struct RequestTimeoutWatch: Sendable {
    enum Action: Equatable, Sendable {
        /// Cancel the request in `slot` that started at `started`, after `ranFor` seconds.
        case cancel(slot: Int, started: Int64, ranFor: Double)
        /// The request in `slot` that started at `started` was cancelled and still holds its
        /// slot after `ranFor` seconds.
        case stuck(slot: Int, started: Int64, ranFor: Double)
    }

    private struct Cancelled: Hashable, Sendable {
        let pid: Int32
        let slot: Int
        let started: Int64
    }

    /// Seconds; 0: off.
    let timeout: Double
    let stuckAfter: Double
    /// When each request was cancelled (monotonic nanoseconds), and whether it was found stuck.
    private var cancelled: [Cancelled: (at: Int64, stuck: Bool)] = [:]

    init(timeout: Double, stuckAfter: Double = 1.0) {
        self.timeout = timeout
        self.stuckAfter = stuckAfter
    }

    var isActive: Bool { self.timeout > 0 }

    /// What to do about worker `pid`'s running requests at `now` (monotonic nanoseconds): each
    /// request is cancelled once, and found stuck once.
    mutating func review(pid: Int32, running: [(slot: Int, started: Int64)], now: Int64) -> [Action] {
        guard self.isActive else { return [] }
        var actions: [Action] = []
        let limit = Int64(self.timeout * 1e9)
        let stuckLimit = Int64(self.stuckAfter * 1e9)
        for request in running where now - request.started >= limit {
            let key = Cancelled(pid: pid, slot: request.slot, started: request.started)
            let ranFor = Double(now - request.started) / 1e9
            guard let record = self.cancelled[key] else {
                self.cancelled[key] = (now, false)
                actions.append(.cancel(slot: request.slot, started: request.started, ranFor: ranFor))
                continue
            }
            if !record.stuck, now - record.at >= stuckLimit {
                self.cancelled[key] = (record.at, true)
                actions.append(.stuck(slot: request.slot, started: request.started, ranFor: ranFor))
            }
        }
        // Requests that ended are forgotten.
        let live = Set(running.map { Cancelled(pid: pid, slot: $0.slot, started: $0.started) })
        for key in self.cancelled.keys where key.pid == pid && !live.contains(key) {
            self.cancelled[key] = nil
        }
        return actions
    }

    /// When the next action could fall due for these running requests (monotonic nanoseconds).
    func nextDeadline(pid: Int32, running: [(slot: Int, started: Int64)]) -> Int64? {
        guard self.isActive else { return nil }
        let limit = Int64(self.timeout * 1e9)
        let stuckLimit = Int64(self.stuckAfter * 1e9)
        return running.map { request in
            let key = Cancelled(pid: pid, slot: request.slot, started: request.started)
            guard let record = self.cancelled[key] else { return request.started + limit }
            return record.stuck ? Int64.max : record.at + stuckLimit
        }.min()
    }

    /// Worker `pid` is gone.
    mutating func forget(pid: Int32) {
        for key in self.cancelled.keys where key.pid == pid { self.cancelled[key] = nil }
    }
}
