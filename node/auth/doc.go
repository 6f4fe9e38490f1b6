// Package auth decides who may connect and what each client may publish, receive and
// subscribe to, from the same files a Mosquitto broker reads: the password_file that
// mosquitto_passwd writes and the acl_file. Users migrating from Mosquitto keep both
// files unchanged.
//
//   - passwd.go: password files ($7$ PBKDF2-SHA512 and $6$ SHA512 hashes), checking a
//     password, hashing one, and the line-preserving edits `skein passwd` makes.
//   - acl.go: ACL files (topic, user and pattern lines) and the publish, read and
//     subscribe checks.
//   - topic.go: the small topic-filter matcher the ACL checks use.
//   - auth.go: Checker, which combines both files, decides a CONNECT and reloads the
//     files on SIGHUP without blocking the checks.
//   - limiter.go: LoginLimiter, which throttles failed logins per source address.
//
// All types are safe for concurrent use unless their doc says otherwise. Nothing here
// logs or does network I/O; files are read only by the Load functions, NewChecker and
// Checker.Reload.
//
// auth imports only the standard library. It must not import node, session or cluster:
// the broker in node calls into it, and cmd builds the Checker from its config.
package auth
