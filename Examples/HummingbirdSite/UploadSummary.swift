import Hummingbird

/// The length and CRC-32 of a request body read as it arrives, never held whole.
struct UploadSummary: ResponseCodable {
    var bytes: Int
    var crc32: UInt32

    init(reading body: RequestBody) async throws {
        var checksum = CRC32()
        var bytes = 0
        for try await chunk in body {
            bytes += chunk.readableBytes
            chunk.withUnsafeReadableBytes { checksum.update($0) }
        }
        self.bytes = bytes
        self.crc32 = checksum.value
    }
}
