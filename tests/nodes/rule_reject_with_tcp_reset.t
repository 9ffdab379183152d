meta l4proto tcp counter name "lan/ssh/r1" reject with tcp reset comment "site.zfw:7 r3"
