#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSwiftGatewayLinux

/// The free request slots of each worker of a group, in memory the supervisor and its workers
/// share (a `memfd` the supervisor creates and hands to each worker as fd 4).
///
/// A worker whose slots are all running reads it to choose between turning away a request that
/// came on a kept connection (a sibling has room: Apache sends it again on a new connection,
/// which only a worker with a free slot accepts) and queueing it (no sibling has room).
final class GroupScoreboard: @unchecked Sendable {
    /// Where a worker finds the board, when `SWIFT_GATEWAY_SCOREBOARD` says it is there.
    static let workerDescriptor: CInt = 4
    static let environmentVariable = "SWIFT_GATEWAY_SCOREBOARD"

    /// One cache line per worker, so workers publishing their room do not contend: the free
    /// slots (Int32) at 0, since when there have been any (Int64 monotonic nanoseconds) at 8.
    private static let entryBytes = 64
    private static let roomSinceOffset = 8

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

    private static func byteCount(workers: Int) -> Int { max(1, workers) * self.entryBytes }

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

    private func room(_ index: Int) -> UnsafeMutablePointer<Int32> {
        (self.base + index * Self.entryBytes).assumingMemoryBound(to: Int32.self)
    }

    private func roomSince(_ index: Int) -> UnsafeMutablePointer<Int64> {
        (self.base + index * Self.entryBytes + Self.roomSinceOffset).assumingMemoryBound(to: Int64.self)
    }

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
}
