#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSwiftGatewayLinux

/// What each worker of a group is doing, in memory the supervisor and its workers share (a
/// `memfd` the supervisor creates and hands to each worker as fd 4).
///
/// A worker whose slots are all running reads it to choose between turning away a request that
/// came on a kept connection (a sibling has room: Apache sends it again on a new connection,
/// which only a worker with a free slot accepts) and queueing it (no sibling has room). The
/// supervisor reads it to enforce the group's limits from outside the workers: the requests
/// each one served, whether it is idle, whether it accepts yet.
///
/// The board has one entry per worker that may run at once: `processes`, and one more for the
/// worker that drains while its replacement already runs (a recycle). The supervisor tells each
/// worker its entry (`SWIFT_GATEWAY_SCOREBOARD_ENTRY`) and zeroes an entry before handing it on.
final class GroupScoreboard: @unchecked Sendable {
    /// Where a worker finds the board, when `SWIFT_GATEWAY_SCOREBOARD` says it is there.
    static let workerDescriptor: CInt = 4
    static let environmentVariable = "SWIFT_GATEWAY_SCOREBOARD"
    /// The entry of the worker that reads it.
    static let entryEnvironmentVariable = "SWIFT_GATEWAY_SCOREBOARD_ENTRY"

    /// The layout of an entry, the one place that defines it. One cache line per worker, so
    /// workers publishing do not contend; every field is written by its worker only (under its
    /// slots' lock, so plain relaxed loads and stores suffice), or by the supervisor while no
    /// worker owns the entry. Times are `CLOCK_MONOTONIC` nanoseconds, the same in every process.
    private enum Layout {
        static let entryBytes = 64
        /// Int32: free request slots (0 while starting, draining or gone).
        static let room = 0
        /// Int32: requests holding a slot now.
        static let inFlight = 4
        /// Int64: since when the worker has had free slots.
        static let roomSince = 8
        /// Int64: requests finished since the worker started.
        static let requestsServed = 16
        /// Int64: when the last request started; 0: none yet.
        static let lastRequestStart = 24
        /// Int64: when the worker began accepting; 0: not yet.
        static let acceptingSince = 32
    }

    /// Entries of a group of `processes` workers: one more for a worker draining while its
    /// replacement runs.
    static func entryCount(processes: Int) -> Int { processes + 1 }

    let workerCount: Int
    private let base: UnsafeMutableRawPointer
    private let byteCount: Int

    private init(base: UnsafeMutableRawPointer, workerCount: Int, byteCount: Int) {
        self.base = base
        self.workerCount = workerCount
        self.byteCount = byteCount
    }

    deinit {
        munmap(self.base, self.byteCount)
    }

    private static func byteCount(workers: Int) -> Int { max(1, workers) * Layout.entryBytes }

    /// Supervisor: a new board for `workers` workers, every entry without room, and its descriptor
    /// (close-on-exec: the spawner places it at fd 4 in each worker).
    static func create(workers: Int) throws(SystemCallError) -> (board: GroupScoreboard, descriptor: CInt) {
        let descriptor = sg_shared_memory_create("swift-gateway-scoreboard", self.byteCount(workers: workers))
        guard descriptor >= 0 else { throw SystemCallError("memfd_create") }
        guard let board = self.map(descriptor, workers: workers) else {
            let error = SystemCallError("mmap of the scoreboard")
            close(descriptor)
            throw error
        }
        return (board, descriptor)
    }

    /// Worker: maps the board at `descriptor` and closes the descriptor (the mapping stays, and
    /// the application cannot hand the board on); nil when it cannot be mapped.
    static func adopt(descriptor: CInt, workers: Int) -> GroupScoreboard? {
        var status = stat()
        defer { close(descriptor) }
        guard fstat(descriptor, &status) == 0, Int(status.st_size) >= self.byteCount(workers: workers) else {
            return nil
        }
        return self.map(descriptor, workers: workers)
    }

    private static func map(_ descriptor: CInt, workers: Int) -> GroupScoreboard? {
        let size = self.byteCount(workers: workers)
        guard let address = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, descriptor, 0),
            address != MAP_FAILED
        else { return nil }
        return GroupScoreboard(base: address, workerCount: workers, byteCount: size)
    }

    private func int32(_ offset: Int, of index: Int) -> UnsafeMutablePointer<Int32> {
        (self.base + index * Layout.entryBytes + offset).assumingMemoryBound(to: Int32.self)
    }

    private func int64(_ offset: Int, of index: Int) -> UnsafeMutablePointer<Int64> {
        (self.base + index * Layout.entryBytes + offset).assumingMemoryBound(to: Int64.self)
    }

    private func room(_ index: Int) -> UnsafeMutablePointer<Int32> { self.int32(Layout.room, of: index) }

    private func roomSince(_ index: Int) -> UnsafeMutablePointer<Int64> { self.int64(Layout.roomSince, of: index) }

    /// Records how many requests worker `index` can start now (0 while it is gone or draining).
    /// Only the worker itself (or the supervisor, once it is gone) writes its entry.
    func setRoom(_ room: Int, ofWorker index: Int) {
        guard (0..<self.workerCount).contains(index) else { return }
        let room = Int32(clamping: max(0, room))
        if room > 0, sg_atomic_load_int32(self.room(index)) == 0 {
            sg_atomic_store_int64(self.roomSince(index), monotonicNanoseconds())
        }
        sg_atomic_store_int32(self.room(index), room)
    }

    /// Free slots of every worker but `index`, together, counting only workers that have had
    /// room for at least `patience` nanoseconds: a slot free for an instant is usually that
    /// worker's next request arriving.
    func roomOfSiblings(of index: Int, heldFor patience: Int64) -> Int {
        let now = monotonicNanoseconds()
        var total = 0
        for sibling in 0..<self.workerCount where sibling != index {
            let room = Int(sg_atomic_load_int32(self.room(sibling)))
            if room > 0, now - sg_atomic_load_int64(self.roomSince(sibling)) >= patience {
                total += room
            }
        }
        return total
    }

    // MARK: Activity (written by the worker, read by the supervisor)

    /// Worker `index` started accepting connections.
    func markAccepting(ofWorker index: Int) {
        guard (0..<self.workerCount).contains(index) else { return }
        sg_atomic_store_int64(self.int64(Layout.acceptingSince, of: index), monotonicNanoseconds())
    }

    /// A request of worker `index` took a slot; `inFlight` requests hold one now.
    func requestStarted(inFlight: Int, ofWorker index: Int) {
        guard (0..<self.workerCount).contains(index) else { return }
        sg_atomic_store_int64(self.int64(Layout.lastRequestStart, of: index), monotonicNanoseconds())
        sg_atomic_store_int32(self.int32(Layout.inFlight, of: index), Int32(clamping: inFlight))
    }

    /// A request of worker `index` finished; `inFlight` requests hold a slot now.
    func requestFinished(inFlight: Int, ofWorker index: Int) {
        guard (0..<self.workerCount).contains(index) else { return }
        let served = self.int64(Layout.requestsServed, of: index)
        // One writer per entry: a load and a store, no read-modify-write needed.
        sg_atomic_store_int64(served, sg_atomic_load_int64(served) + 1)
        sg_atomic_store_int32(self.int32(Layout.inFlight, of: index), Int32(clamping: inFlight))
    }

    /// What worker `index` published; nil for an index outside the board.
    func activity(ofWorker index: Int) -> WorkerActivity? {
        guard (0..<self.workerCount).contains(index) else { return nil }
        return WorkerActivity(
            requestsServed: Int(sg_atomic_load_int64(self.int64(Layout.requestsServed, of: index))),
            inFlight: Int(sg_atomic_load_int32(self.int32(Layout.inFlight, of: index))),
            lastRequestStart: sg_atomic_load_int64(self.int64(Layout.lastRequestStart, of: index)),
            acceptingSince: sg_atomic_load_int64(self.int64(Layout.acceptingSince, of: index))
        )
    }

    /// Supervisor: zeroes entry `index`, for a worker that is gone or before a new one gets it.
    func reset(worker index: Int) {
        guard (0..<self.workerCount).contains(index) else { return }
        sg_atomic_store_int32(self.room(index), 0)
        sg_atomic_store_int32(self.int32(Layout.inFlight, of: index), 0)
        sg_atomic_store_int64(self.roomSince(index), 0)
        sg_atomic_store_int64(self.int64(Layout.requestsServed, of: index), 0)
        sg_atomic_store_int64(self.int64(Layout.lastRequestStart, of: index), 0)
        sg_atomic_store_int64(self.int64(Layout.acceptingSince, of: index), 0)
    }
}
