/// CRC-32 as zlib computes it (IEEE 802.3, reflected).
struct CRC32 {
    private static let table: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = crc & 1 == 1 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
        return crc
    }

    private var crc: UInt32 = 0xFFFF_FFFF

    var value: UInt32 { ~self.crc }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var crc = self.crc
        Self.table.withUnsafeBufferPointer { table in
            for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        }
        self.crc = crc
    }
}
