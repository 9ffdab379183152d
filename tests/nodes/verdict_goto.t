goto target
