"""A client written from the original Python exercise: its conn_auth, then
its put, byte for byte. It never reads a reply, exactly like the original.

usage: seed_client.py HOST PORT SECRET FILE...
"""
import hmac
import json
import os
import socket
import struct
import sys
import time


def conn_auth(conn, secret_key):
    msg = conn.recv(32)
    # The original called hmac.new(key, msg), whose default digest was MD5.
    h = hmac.new(secret_key, msg, "md5")
    conn.sendall(h.digest())


def put(sock, filename):
    filesize = os.path.getsize(filename)
    head_dic = {"cmd": "put", "filename": os.path.basename(filename), "filesize": filesize}
    head_json_bytes = bytes(json.dumps(head_dic), encoding="utf-8")
    sock.send(struct.pack("i", len(head_json_bytes)))
    sock.send(head_json_bytes)
    with open(filename, "rb") as f:
        for line in f:
            sock.sendall(line)


def main():
    host, port, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.connect((host, port))
    conn_auth(sock, secret)
    for name in sys.argv[4:]:
        put(sock, name)
    # A person would now type at the prompt; give the server time to read
    # the last body before the socket closes.
    time.sleep(0.5)
    sock.close()


if __name__ == "__main__":
    main()
