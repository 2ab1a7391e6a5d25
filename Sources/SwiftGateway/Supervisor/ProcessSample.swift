#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What the supervisor samples of a worker from outside: its resident memory
/// (`/proc/PID/statm`) and the CPU time it used (`/proc/PID/stat`, user + system).
struct ProcessSample: Equatable, Sendable {
    /// nil when it could not be read (the process is gone).
    var residentBytes: Int?
    var cpuMicroseconds: Int64?

    /// Reads both of process `pid`: two small reads of /proc.
    static func read(pid: pid_t) -> ProcessSample {
        ProcessSample(
            residentBytes: ResidentMemory.bytes(ofProcess: pid),
            cpuMicroseconds: self.readText("/proc/\(pid)/stat").flatMap {
                self.cpuMicroseconds(stat: $0, ticksPerSecond: Int64(sysconf(Int32(_SC_CLK_TCK))))
            })
    }

    /// User + system CPU time from the text of `/proc/PID/stat`: fields 14 and 15, in clock
    /// ticks, counted after the command name (which may hold spaces and parentheses).
    static func cpuMicroseconds(stat: String, ticksPerSecond: Int64) -> Int64? {
        guard ticksPerSecond > 0, let close = stat.lastIndex(of: ")") else { return nil }
        // After ") ": field 3 (state) onwards.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Int64(fields[11]), let system = Int64(fields[12]) else { return nil }
        return (user + system) * 1_000_000 / ticksPerSecond
    }

    private static func readText(_ path: String) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let count = Glibc.read(descriptor, &buffer, buffer.count)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }
}
