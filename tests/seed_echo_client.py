"""The seed's authenticated echo client, as written, with Python 3's
necessities: the digest named (md5, the old default), the address from
argv; lines come from stdin as input() reads them.

usage: seed_echo_client.py HOST PORT
"""
from socket import *
import hmac,os,sys
secret_key=b'linhaifeng bang bang bang'
def conn_auth(conn):
    '''
    验证客户端到服务器的链接
    :param conn:
    :return:
    '''
    msg=conn.recv(32)
    h=hmac.new(secret_key,msg,'md5')
    digest=h.digest()
    conn.sendall(digest)

def client_handler(ip_port,bufsize=1024):
    tcp_socket_client=socket(AF_INET,SOCK_STREAM)
    tcp_socket_client.connect(ip_port)
    conn_auth(tcp_socket_client)
    while True:
        data=input('>>: ').strip()
        if not data:continue
        if data == 'quit':break
        tcp_socket_client.sendall(data.encode('utf-8'))
        respone=tcp_socket_client.recv(bufsize)
        print(respone.decode('utf-8'))
    tcp_socket_client.close()

if __name__ == '__main__':
    ip_port=(sys.argv[1],int(sys.argv[2]))
    bufsize=1024
    client_handler(ip_port,bufsize)
