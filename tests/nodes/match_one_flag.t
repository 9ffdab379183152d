ct state invalid
