/// Why a supervisor could not take the board Apache's parent made for its group.
struct BoardAdoptionError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) { self.description = description }
}
