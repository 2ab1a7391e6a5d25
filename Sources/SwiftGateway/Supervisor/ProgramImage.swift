#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One build of the group's program, held open: workers start from exactly this build even after
/// the file was replaced or removed, so a broken deploy never reaches a worker restarted after a
/// crash — only a rolling restart that saw the new build accept moves the group onto it.
struct ProgramImage: Sendable {
    /// The program as configured, for log lines and to open the next build.
    let path: String
    /// The build, open; nil when it could not be opened (workers then start from `path`).
    let descriptor: CInt?
    let identity: FileIdentity?
    /// Counts builds rolled in (0: the one the supervisor started with).
    let generation: Int

    /// What the worker's `execve` runs: the open build itself, whatever the path names by now. A
    /// script is started by its path: its interpreter opens it again, after exec has closed the
    /// descriptor.
    var spawnPath: String {
        guard let descriptor = self.descriptor, !Self.isScript(descriptor) else { return self.path }
        return "/proc/self/fd/\(descriptor)"
    }

    private static func isScript(_ descriptor: CInt) -> Bool {
        var magic: [UInt8] = [0, 0]
        return pread(descriptor, &magic, 2, 0) == 2 && magic == [UInt8(ascii: "#"), UInt8(ascii: "!")]
    }

    /// The build the supervisor itself runs (`/proc/self/exe`), configured as `path`.
    static func running(path: String) -> ProgramImage {
        let descriptor = openReadOnly("/proc/self/exe")
        guard descriptor >= 0 else {
            return ProgramImage(path: path, descriptor: nil, identity: FileIdentity(path: path), generation: 0)
        }
        return ProgramImage(
            path: path, descriptor: descriptor, identity: FileIdentity(descriptor: descriptor), generation: 0)
    }

    /// The build at `path` now, as generation `generation`.
    static func open(path: String, generation: Int) throws(SystemCallError) -> ProgramImage {
        let descriptor = openReadOnly(path)
        guard descriptor >= 0 else { throw SystemCallError("open \(path)") }
        return ProgramImage(
            path: path, descriptor: descriptor, identity: FileIdentity(descriptor: descriptor), generation: generation)
    }

    /// Closes the build; no worker can start from it afterwards.
    func release() {
        if let descriptor = self.descriptor { close(descriptor) }
    }
}

private func openReadOnly(_ path: String) -> CInt {
    open(path, O_RDONLY | O_CLOEXEC)
}
