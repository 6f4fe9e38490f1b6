module github.com/skein-mq/skein

go 1.26.8
