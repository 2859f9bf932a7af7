"""The original Python upload server, written from the exercise: a
ThreadingTCPServer whose handler checks the client with the HMAC challenge
(the exercise's conn_auth) and then serves seed-style puts. It sends no
replies and ignores unknown commands, as the original did.

usage: seed_server.py SECRET ROOT   (prints "listening on HOST:PORT")
"""
import hmac
import json
import os
import socketserver
import struct
import sys


class FtpServer(socketserver.BaseRequestHandler):
    coding = "utf-8"
    max_packet_size = 1024

    def conn_auth(self):
        msg = os.urandom(32)
        self.request.sendall(msg)
        digest = hmac.new(self.server.secret, msg, "md5").digest()
        respone = self.request.recv(len(digest))
        return hmac.compare_digest(respone, digest)

    def handle(self):
        if not self.conn_auth():
            self.request.close()
            return
        while True:
            data = self.request.recv(4)
            if len(data) < 4:
                break
            data_len = struct.unpack("i", data)[0]
            head_json = self.request.recv(data_len).decode(self.coding)
            head_dic = json.loads(head_json)
            cmd = head_dic["cmd"]
            if cmd == "put":
                self.put(head_dic)

    def put(self, args):
        file_path = os.path.normpath(os.path.join(self.server.root, args["filename"]))
        filesize = args["filesize"]
        recv_size = 0
        with open(file_path, "wb") as f:
            while recv_size < filesize:
                recv_data = self.request.recv(self.max_packet_size)
                if not recv_data:
                    break
                f.write(recv_data)
                recv_size += len(recv_data)


def main():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), FtpServer)
    server.secret = sys.argv[1].encode()
    server.root = sys.argv[2]
    host, port = server.server_address
    print(f"listening on {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
