counter name "drop/no-zone" drop
