ct state established,related
