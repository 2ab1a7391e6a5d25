import Hummingbird

/// A JSON request body: `{"item": "tea", "quantity": 3}`.
struct Order: Codable, Sendable {
    var item: String
    var quantity: Int

    func confirmation() throws -> Confirmation {
        guard self.quantity > 0 else { throw HTTPError(.unprocessableContent, message: "quantity must be positive\n") }
        return Confirmation(item: self.item, quantity: self.quantity, total: self.quantity * 250)
    }
}

/// A JSON response body.
struct Confirmation: ResponseCodable {
    var item: String
    var quantity: Int
    /// In cents.
    var total: Int
}
