counter drop/no-zone {
}
