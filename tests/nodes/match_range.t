tcp dport 8443-8444
