ip6 saddr { ::1, ::ffff:127.0.0.0/104 }
