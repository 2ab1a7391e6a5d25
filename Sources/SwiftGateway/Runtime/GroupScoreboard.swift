#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSwiftGatewayLinux

/// What each worker of a group is doing, in memory the supervisor and its workers share (a
/// `memfd` the supervisor creates and hands to each worker as fd 4). Its layout is defined once,
/// in C (`sg_scoreboard.h`), for whatever else reads a board; this type reads and writes it.
///
/// A worker whose slots are all running reads it to choose between turning away a request that
/// came on a kept connection (a sibling has room: Apache sends it again on a new connection,
/// which only a worker with a free slot accepts) and queueing it (no sibling has room). The
/// supervisor reads it to enforce the group's limits from outside the workers: the requests
/// each one served, whether it is idle, whether it accepts yet, when each running request
/// started; and it writes there what it knows of each worker (pid, state, start, memory, CPU
/// time, why the slot's previous worker ended), for a status page.
///
/// The board has one entry per worker that may run at once: up to `maximum-processes` serving,
/// three times as many draining while their replacements already run (recycles, rolling
/// restarts), and one for a new build's worker starting beside the one it replaces. The supervisor tells each worker
/// its entry (`SWIFT_GATEWAY_SCOREBOARD_ENTRY`) and zeroes an entry before handing it on.
///
/// Apache's parent makes the board (its children map it read-only, for the status page) and hands
/// it to the supervisor (`SWIFT_GATEWAY_SCOREBOARD_FD`); a supervisor started without one makes its
/// own. The supervisor also counts there, for the status page, the requests served by workers
/// that are gone and the recycles and restarts by reason.
final class GroupScoreboard: @unchecked Sendable {
    /// Where a worker finds the board, when `SWIFT_GATEWAY_SCOREBOARD` says it is there.
    static let workerDescriptor: CInt = 4
    static let environmentVariable = "SWIFT_GATEWAY_SCOREBOARD"
    /// The entry of the worker that reads it.
    static let entryEnvironmentVariable = "SWIFT_GATEWAY_SCOREBOARD_ENTRY"
    /// Where a supervisor finds the board Apache's parent made for the group.
    static let apacheDescriptorVariable = "SWIFT_GATEWAY_SCOREBOARD_FD"

    /// Entries of a group of at most `maximumProcesses` workers: three times as many again
    /// draining (rolling restarts that follow each other while long requests finish), and one
    /// starting beside the worker it replaces. A worker due while all are taken waits for one.
    static func entryCount(maximumProcesses: Int) -> Int {
        Int(sg_scoreboard_entries(CInt(clamping: maximumProcesses)))
    }

    /// Worker entries.
    let workerCount: Int
    /// Request slots of each worker (`threads=`).
    let requestSlots: Int
    private let base: UnsafeMutableRawPointer
    private let byteCount: Int
    private let entryBytes: Int

    private init(base: UnsafeMutableRawPointer, workerCount: Int, requestSlots: Int) {
        self.base = base
        self.workerCount = workerCount
        self.requestSlots = requestSlots
        self.byteCount = Self.byteCount(workers: workerCount, requestSlots: requestSlots)
        self.entryBytes = sg_scoreboard_entry_bytes(CInt(clamping: requestSlots))
    }

    deinit {
        munmap(self.base, self.byteCount)
    }

    private static func byteCount(workers: Int, requestSlots: Int) -> Int {
        sg_scoreboard_bytes(CInt(clamping: max(1, workers)), CInt(clamping: requestSlots))
    }

    /// Supervisor: a new board for `workers` entries of `requestSlots` request slots, every entry
    /// empty, and its descriptor (close-on-exec: the spawner places it at fd 4 in each worker).
    static func create(
        workers: Int, requestSlots: Int, processes: Int, maximumProcesses: Int = 0
    ) throws(SystemCallError) -> (board: GroupScoreboard, descriptor: CInt) {
        let size = self.byteCount(workers: workers, requestSlots: requestSlots)
        let descriptor = sg_shared_memory_create("swift-gateway-scoreboard", size)
        guard descriptor >= 0 else { throw SystemCallError("memfd_create") }
        guard let board = self.map(descriptor, workers: workers, requestSlots: requestSlots) else {
            let error = SystemCallError("mmap of the scoreboard")
            close(descriptor)
            throw error
        }
        board.writeHeader(processes: processes, maximumProcesses: maximumProcesses)
        return (board, descriptor)
    }

    /// Supervisor: the board Apache's parent made for the group, at `descriptor` (kept open, made
    /// close-on-exec: the spawner places it at fd 4 in each worker). Its header must say this
    /// group's shape; the mapping is writable, and the descriptor's size sealed by Apache.
    static func adoptApacheBoard(
        descriptor: CInt, workers: Int, requestSlots: Int
    ) throws(BoardAdoptionError) -> GroupScoreboard {
        var status = stat()
        guard descriptor > 2, fstat(descriptor, &status) == 0 else {
            throw BoardAdoptionError("fd \(descriptor) is not open")
        }
        let needed = self.byteCount(workers: workers, requestSlots: requestSlots)
        guard Int(status.st_size) >= needed else {
            throw BoardAdoptionError("it has \(status.st_size) bytes, the group's board needs \(needed)")
        }
        guard let board = self.map(descriptor, workers: workers, requestSlots: requestSlots) else {
            throw BoardAdoptionError("mmap failed: \(SystemCallError("mmap"))")
        }
        guard board.headerMatches(),
            Int(sg_atomic_load_int32(board.headerField(Int(SG_SCOREBOARD_REQUEST_SLOTS_OFFSET)))) == requestSlots
        else {
            throw BoardAdoptionError(
                "its header does not describe this group's board (another layout: a module and a program built from different SwiftGateway versions?)"
            )
        }
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        return board
    }

    /// Worker: maps the board at `descriptor` and closes the descriptor (the mapping stays, and
    /// the application cannot hand the board on); nil when it is not a board of this shape.
    static func adopt(descriptor: CInt, workers: Int, requestSlots: Int) -> GroupScoreboard? {
        var status = stat()
        defer { close(descriptor) }
        guard fstat(descriptor, &status) == 0,
            Int(status.st_size) >= self.byteCount(workers: workers, requestSlots: requestSlots),
            let board = self.map(descriptor, workers: workers, requestSlots: requestSlots),
            board.headerMatches()
        else { return nil }
        return board
    }

    private static func map(_ descriptor: CInt, workers: Int, requestSlots: Int) -> GroupScoreboard? {
        let size = self.byteCount(workers: workers, requestSlots: requestSlots)
        guard let address = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, descriptor, 0),
            address != MAP_FAILED
        else { return nil }
        return GroupScoreboard(base: address, workerCount: workers, requestSlots: requestSlots)
    }

    // MARK: Layout

    private func headerField(_ offset: Int) -> UnsafeMutablePointer<Int32> {
        (self.base + offset).assumingMemoryBound(to: Int32.self)
    }

    private func headerCounter(_ offset: Int) -> UnsafeMutablePointer<Int64> {
        (self.base + offset).assumingMemoryBound(to: Int64.self)
    }

    /// The header as Apache's parent writes it for a board it makes (`sg_scoreboard_header_init`).
    private func writeHeader(processes: Int, maximumProcesses: Int) {
        sg_scoreboard_header_init(
            self.base.assumingMemoryBound(to: sg_scoreboard_header.self), CInt(clamping: self.workerCount),
            CInt(clamping: self.requestSlots), CInt(clamping: processes), CInt(clamping: maximumProcesses))
    }

    private func headerMatches() -> Bool {
        UInt32(bitPattern: sg_atomic_load_int32(self.headerField(Int(SG_SCOREBOARD_MAGIC_OFFSET))))
            == UInt32(SG_SCOREBOARD_MAGIC)
            && Int(sg_atomic_load_int32(self.headerField(Int(SG_SCOREBOARD_ENTRY_BYTES_OFFSET)))) == self.entryBytes
            && Int(sg_atomic_load_int32(self.headerField(Int(SG_SCOREBOARD_ENTRIES_OFFSET)))) == self.workerCount
    }

    private func entry(_ index: Int) -> UnsafeMutableRawPointer {
        self.base + Int(SG_SCOREBOARD_HEADER_BYTES) + index * self.entryBytes
    }

    private func int32(_ offset: Int, of index: Int) -> UnsafeMutablePointer<Int32> {
        (self.entry(index) + offset).assumingMemoryBound(to: Int32.self)
    }

    private func int64(_ offset: Int, of index: Int) -> UnsafeMutablePointer<Int64> {
        (self.entry(index) + offset).assumingMemoryBound(to: Int64.self)
    }

    private func request(_ slot: Int, field: Int, of index: Int) -> UnsafeMutablePointer<Int64> {
        (self.entry(index) + Int(SG_SCOREBOARD_WORKER_BYTES) + slot * Int(SG_SCOREBOARD_REQUEST_BYTES) + field)
            .assumingMemoryBound(to: Int64.self)
    }

    private func room(_ index: Int) -> UnsafeMutablePointer<Int32> { self.int32(Int(SG_WORKER_ROOM), of: index) }

    private func roomSince(_ index: Int) -> UnsafeMutablePointer<Int64> {
        self.int64(Int(SG_WORKER_ROOM_SINCE), of: index)
    }

    private func contains(worker index: Int) -> Bool { (0..<self.workerCount).contains(index) }

    private func contains(worker index: Int, slot: Int) -> Bool {
        self.contains(worker: index) && (0..<self.requestSlots).contains(slot)
    }

    /// Records how many requests worker `index` can start now (0 while it is gone or draining).
    /// Only the worker itself (or the supervisor, once it is gone) writes its entry.
    func setRoom(_ room: Int, ofWorker index: Int) {
        guard self.contains(worker: index) else { return }
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

    // MARK: Requests (written by the worker, read by the supervisor)

    /// Worker `index` started accepting connections.
    func markAccepting(ofWorker index: Int) {
        guard self.contains(worker: index) else { return }
        sg_atomic_store_int64(self.int64(Int(SG_WORKER_ACCEPTING_SINCE), of: index), monotonicNanoseconds())
    }

    /// A request of worker `index` took request slot `slot`; `inFlight` requests hold one now.
    /// Returns its start as the board records it (the supervisor names it by that to cancel it).
    @discardableResult
    func requestStarted(slot: Int, inFlight: Int, ofWorker index: Int) -> Int64 {
        guard self.contains(worker: index) else { return 0 }
        let now = monotonicNanoseconds()
        sg_atomic_store_int64(self.int64(Int(SG_WORKER_LAST_REQUEST_START), of: index), now)
        sg_atomic_store_int32(self.int32(Int(SG_WORKER_IN_FLIGHT), of: index), Int32(clamping: inFlight))
        if (0..<self.requestSlots).contains(slot) {
            sg_atomic_store_int64(self.request(slot, field: Int(SG_REQUEST_STARTED), of: index), now)
        }
        return now
    }

    /// A request of worker `index` gave back request slot `slot`; `inFlight` requests hold one now.
    func requestFinished(slot: Int, inFlight: Int, ofWorker index: Int) {
        guard self.contains(worker: index) else { return }
        if (0..<self.requestSlots).contains(slot) {
            sg_atomic_store_int64(self.request(slot, field: Int(SG_REQUEST_STARTED), of: index), 0)
        }
        let served = self.int64(Int(SG_WORKER_REQUESTS_SERVED), of: index)
        // One writer per entry: a load and a store, no read-modify-write needed.
        sg_atomic_store_int64(served, sg_atomic_load_int64(served) + 1)
        sg_atomic_store_int32(self.int32(Int(SG_WORKER_IN_FLIGHT), of: index), Int32(clamping: inFlight))
    }

    /// Worker: whether the supervisor gave up on the request holding `slot` now.
    func cancelRequested(slot: Int, ofWorker index: Int) -> Bool {
        guard self.contains(worker: index, slot: slot) else { return false }
        let started = sg_atomic_load_int64(self.request(slot, field: Int(SG_REQUEST_STARTED), of: index))
        return started != 0
            && sg_atomic_load_int64(self.request(slot, field: Int(SG_REQUEST_CANCEL), of: index)) == started
    }

    /// Worker, on the request's event loop: it acted on the supervisor's cancel of the request
    /// in `slot` that started at `started` (the supervisor then knows the loop is not blocked).
    func acknowledgeCancel(slot: Int, started: Int64, ofWorker index: Int) {
        guard self.contains(worker: index, slot: slot), started != 0 else { return }
        let cancel = self.request(slot, field: Int(SG_REQUEST_CANCEL), of: index)
        if sg_atomic_load_int64(cancel) == started { sg_atomic_store_int64(cancel, -started) }
    }

    /// Supervisor: whether the worker acted on its cancel of the request that started at `started`.
    func cancelAcknowledged(slot: Int, started: Int64, ofWorker index: Int) -> Bool {
        guard self.contains(worker: index, slot: slot), started != 0 else { return false }
        return sg_atomic_load_int64(self.request(slot, field: Int(SG_REQUEST_CANCEL), of: index)) == -started
    }

    /// What worker `index` published; nil for an index outside the board.
    func activity(ofWorker index: Int) -> WorkerActivity? {
        guard self.contains(worker: index) else { return nil }
        return WorkerActivity(
            requestsServed: Int(sg_atomic_load_int64(self.int64(Int(SG_WORKER_REQUESTS_SERVED), of: index))),
            inFlight: Int(sg_atomic_load_int32(self.int32(Int(SG_WORKER_IN_FLIGHT), of: index))),
            lastRequestStart: sg_atomic_load_int64(self.int64(Int(SG_WORKER_LAST_REQUEST_START), of: index)),
            room: Int(sg_atomic_load_int32(self.room(index))),
            acceptingSince: sg_atomic_load_int64(self.int64(Int(SG_WORKER_ACCEPTING_SINCE), of: index)),
            queued: Int(sg_atomic_load_int32(self.int32(Int(SG_WORKER_QUEUED), of: index))),
            routedRequests: Int(sg_atomic_load_int64(self.int64(Int(SG_WORKER_ROUTED_REQUESTS), of: index)))
        )
    }

    /// Supervisor: the requests of worker `index` holding a slot now, by slot, with their starts.
    func runningRequests(ofWorker index: Int) -> [(slot: Int, started: Int64)] {
        guard self.contains(worker: index) else { return [] }
        var running: [(slot: Int, started: Int64)] = []
        for slot in 0..<self.requestSlots {
            let started = sg_atomic_load_int64(self.request(slot, field: Int(SG_REQUEST_STARTED), of: index))
            if started != 0 { running.append((slot, started)) }
        }
        return running
    }

    /// Supervisor: gives up on the request of worker `index` in `slot` that started at `started`
    /// (a later request in the same slot is not affected). The worker acts on it when signalled.
    func requestCancel(slot: Int, started: Int64, ofWorker index: Int) {
        guard self.contains(worker: index, slot: slot) else { return }
        sg_atomic_store_int64(self.request(slot, field: Int(SG_REQUEST_CANCEL), of: index), started)
    }

    /// Worker: the URL path of the request that just took `slot` (its request-target `uri`, the
    /// query string left out), truncated to the cell's size. One bounded copy, no allocation.
    func publishPath(slot: Int, ofWorker index: Int, uri: UnsafeRawBufferPointer) {
        guard self.contains(worker: index, slot: slot), let bytes = uri.baseAddress else { return }
        let cell = (self.entry(index) + Int(SG_SCOREBOARD_WORKER_BYTES) + slot * Int(SG_SCOREBOARD_REQUEST_BYTES))
            .assumingMemoryBound(to: sg_scoreboard_request.self)
        sg_scoreboard_publish_path(cell, bytes, uri.count)
    }

    /// The URL path published for the request holding `slot` now; nil when none is (the slot is
    /// free, or its request has not published one yet).
    func path(slot: Int, ofWorker index: Int) -> String? {
        guard self.contains(worker: index, slot: slot) else { return nil }
        let started = sg_atomic_load_int64(self.request(slot, field: Int(SG_REQUEST_STARTED), of: index))
        guard started != 0,
            sg_atomic_load_int64(self.request(slot, field: Int(SG_REQUEST_PATH_STARTED), of: index)) == started
        else { return nil }
        let field =
            self.entry(index) + Int(SG_SCOREBOARD_WORKER_BYTES) + slot * Int(SG_SCOREBOARD_REQUEST_BYTES)
            + Int(SG_REQUEST_PATH)
        let bytes = UnsafeRawBufferPointer(start: field, count: Int(SG_SCOREBOARD_PATH_BYTES))
        return String(decoding: bytes[0..<(bytes.firstIndex(of: 0) ?? bytes.count)], as: UTF8.self)
    }

    /// Worker: `count` requests wait for a slot inside worker `index` now.
    func setQueued(_ count: Int, ofWorker index: Int) {
        guard self.contains(worker: index) else { return }
        sg_atomic_store_int32(self.int32(Int(SG_WORKER_QUEUED), of: index), Int32(clamping: count))
    }

    /// Worker: a request arrived with an affinity route (one writer per entry).
    func countRoutedRequest(ofWorker index: Int) {
        guard self.contains(worker: index) else { return }
        let routed = self.int64(Int(SG_WORKER_ROUTED_REQUESTS), of: index)
        sg_atomic_store_int64(routed, sg_atomic_load_int64(routed) + 1)
    }

    // MARK: The group (written by the supervisor)

    /// Supervisor: it took the board (Apache's status page names it); the counters stay as a
    /// previous supervisor of the group left them.
    func takeOver(supervisorPID: pid_t, startedUnixMicroseconds: Int64) {
        sg_atomic_store_int32(self.headerField(Int(SG_SCOREBOARD_SUPERVISOR_PID_OFFSET)), supervisorPID)
        sg_atomic_store_int64(
            self.headerCounter(Int(SG_SCOREBOARD_SUPERVISOR_STARTED_OFFSET)), startedUnixMicroseconds)
    }

    /// Supervisor: one more worker replaced (or let go) on purpose, for `reason`.
    func count(_ reason: RecycleCounter) {
        self.increment(Int(SG_SCOREBOARD_RECYCLES_OFFSET) + Int(reason.rawValue) * 8)
    }

    /// Supervisor: one more worker restarted after it ended for `reason`.
    func count(_ reason: RestartCounter) {
        self.increment(Int(SG_SCOREBOARD_RESTARTS_OFFSET) + Int(reason.rawValue) * 8)
    }

    private func increment(_ offset: Int) {
        // The supervisor is the only writer of the header's counters.
        let counter = self.headerCounter(offset)
        sg_atomic_store_int64(counter, sg_atomic_load_int64(counter) + 1)
    }

    /// What the supervisor counted for the group.
    func counters() -> GroupCounters {
        var counters = GroupCounters(
            supervisorPID: sg_atomic_load_int32(self.headerField(Int(SG_SCOREBOARD_SUPERVISOR_PID_OFFSET))),
            requestsServedByGone: sg_atomic_load_int64(self.headerCounter(Int(SG_SCOREBOARD_SERVED_BY_GONE_OFFSET))))
        for reason in RecycleCounter.allCases {
            counters.recycles[reason] = sg_atomic_load_int64(
                self.headerCounter(Int(SG_SCOREBOARD_RECYCLES_OFFSET) + Int(reason.rawValue) * 8))
        }
        for reason in RestartCounter.allCases {
            counters.restarts[reason] = sg_atomic_load_int64(
                self.headerCounter(Int(SG_SCOREBOARD_RESTARTS_OFFSET) + Int(reason.rawValue) * 8))
        }
        return counters
    }

    /// Supervisor: the worker of entry `index` is gone: its requests served join the group's
    /// count of those served by workers that are gone (so the group's total holds across
    /// recycles), and the entry is zeroed for the next worker.
    func retire(worker index: Int) {
        guard self.contains(worker: index) else { return }
        let served = sg_atomic_load_int64(self.int64(Int(SG_WORKER_REQUESTS_SERVED), of: index))
        if served > 0 {
            let gone = self.headerCounter(Int(SG_SCOREBOARD_SERVED_BY_GONE_OFFSET))
            sg_atomic_store_int64(gone, sg_atomic_load_int64(gone) + served)
        }
        self.reset(worker: index)
    }

    /// The entries that name a worker (pid not 0), with its pid: after a supervisor's restart,
    /// what the previous one's workers left.
    func occupiedEntries() -> [(entry: Int, pid: pid_t)] {
        (0..<self.workerCount).compactMap { index in
            let pid = sg_atomic_load_int32(self.int32(Int(SG_WORKER_PID), of: index))
            return pid != 0 ? (index, pid) : nil
        }
    }

    // MARK: Workers (written by the supervisor)

    /// Supervisor: entry `index` now belongs to a worker just spawned.
    func publishWorker(
        _ index: Int, pid: pid_t, slot: Int, startedAt: Int64, startedUnixMicroseconds: Int64, lastExit: String
    ) {
        guard self.contains(worker: index) else { return }
        sg_atomic_store_int32(self.int32(Int(SG_WORKER_PID), of: index), pid)
        sg_atomic_store_int32(self.int32(Int(SG_WORKER_SLOT), of: index), Int32(clamping: slot))
        sg_atomic_store_int64(self.int64(Int(SG_WORKER_STARTED), of: index), startedAt)
        sg_atomic_store_int64(self.int64(Int(SG_WORKER_STARTED_UNIX_USEC), of: index), startedUnixMicroseconds)
        let field = self.entry(index) + Int(SG_WORKER_LAST_EXIT)
        let capacity = Int(SG_SCOREBOARD_LAST_EXIT_BYTES)
        // Whole characters only, always NUL-terminated.
        var bytes: [UInt8] = []
        for scalar in lastExit.unicodeScalars {
            let encoded = Array(String(scalar).utf8)
            guard bytes.count + encoded.count < capacity else { break }
            bytes += encoded
        }
        field.initializeMemory(as: UInt8.self, repeating: 0, count: capacity)
        field.copyMemory(from: bytes, byteCount: bytes.count)
        self.setState(.starting, ofWorker: index)
    }

    /// Supervisor: what worker `index` is doing now.
    func setState(_ state: WorkerState, ofWorker index: Int) {
        guard self.contains(worker: index) else { return }
        sg_atomic_store_int32(self.int32(Int(SG_WORKER_STATE), of: index), state.rawValue)
    }

    /// Supervisor: the last sample of worker `index`'s resident memory and CPU time.
    func recordSample(residentBytes: Int, cpuMicroseconds: Int64, ofWorker index: Int) {
        guard self.contains(worker: index) else { return }
        sg_atomic_store_int64(self.int64(Int(SG_WORKER_RSS_BYTES), of: index), Int64(residentBytes))
        sg_atomic_store_int64(self.int64(Int(SG_WORKER_CPU_USEC), of: index), cpuMicroseconds)
    }

    /// What the supervisor published of worker `index`; nil for an index outside the board.
    func snapshot(ofWorker index: Int) -> WorkerSnapshot? {
        guard self.contains(worker: index) else { return nil }
        let field = self.entry(index) + Int(SG_WORKER_LAST_EXIT)
        let capacity = Int(SG_SCOREBOARD_LAST_EXIT_BYTES)
        let bytes = UnsafeRawBufferPointer(start: field, count: capacity)
        let length = bytes.firstIndex(of: 0) ?? capacity
        return WorkerSnapshot(
            pid: sg_atomic_load_int32(self.int32(Int(SG_WORKER_PID), of: index)),
            state: WorkerState(rawValue: sg_atomic_load_int32(self.int32(Int(SG_WORKER_STATE), of: index))) ?? .empty,
            residentBytes: Int(sg_atomic_load_int64(self.int64(Int(SG_WORKER_RSS_BYTES), of: index))),
            cpuMicroseconds: sg_atomic_load_int64(self.int64(Int(SG_WORKER_CPU_USEC), of: index)),
            lastExit: String(decoding: bytes[0..<length], as: UTF8.self)
        )
    }

    /// Supervisor: zeroes entry `index`, for a worker that is gone or before a new one gets it.
    func reset(worker index: Int) {
        guard self.contains(worker: index) else { return }
        self.entry(index).initializeMemory(as: UInt8.self, repeating: 0, count: self.entryBytes)
    }
}
