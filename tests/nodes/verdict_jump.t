jump target
