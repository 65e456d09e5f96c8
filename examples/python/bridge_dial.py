#!/usr/bin/python3
"""Bridge-dial over the bus: for each call it wins, creates the callee, puts caller and callee in a mixing bridge, dials
the callee, answers the caller when the callee is up, and hangs up the other side when either leaves.
Uses pika and the README's "Call control" contract only; it never talks to Asterisk.

Usage: /usr/bin/python3 bridge_dial.py NAME ENDPOINT     e.g. dialer Local/s@callee/n   (or APP_NAME / CALLEE_ENDPOINT)
"""
import json
import os
import signal
import sys
import time
import uuid

import pika

env = os.environ
app = sys.argv[1] if len(sys.argv) > 1 else env.get("APP_NAME")
endpoint = sys.argv[2] if len(sys.argv) > 2 else env.get("CALLEE_ENDPOINT")
if not app or not endpoint:
    sys.exit("usage: bridge_dial.py NAME ENDPOINT")
user = env.get("RABBITMQ_USER", "guest")

connection = pika.BlockingConnection(pika.ConnectionParameters(
    host=env.get("RABBITMQ_HOST", "localhost"),
    port=int(env.get("RABBITMQ_PORT", "5672")),
    virtual_host=env.get("RABBITMQ_VHOST", "/"),
    credentials=pika.PlainCredentials(user, env.get("RABBITMQ_PASSWORD", "guest")),
))
channel = connection.channel()
# The exchanges are provisioned by the router's side; an app only checks they exist.
for exchange in ("call.broadcasts", "call.claims", "app.heartbeats", "call.control", "call.control.events"):
    channel.exchange_declare(exchange, passive=True)
queue = f"app.{app}"
channel.queue_declare(queue, durable=True)
channel.queue_bind(queue, "call.broadcasts", routing_key=app)
channel.queue_bind(queue, "call.control.events", routing_key=app)


def publish(exchange, routing_key, message, **properties):
    # user_id: RabbitMQ checks it is the user we connected as; the adapter checks that user owns the app.
    channel.basic_publish(exchange, routing_key, json.dumps(message),
                          pika.BasicProperties(content_type="application/json", user_id=user, **properties))


calls = {}    # callId -> {"route", "caller", "callee", "bridge", "steps"}
waiting = {}  # correlation_id -> (callId, what to do with the reply)


def command(call_id, then=None, **fields):
    call = calls.get(call_id)
    if call is None:
        return
    correlation_id = str(uuid.uuid4())
    waiting[correlation_id] = (call_id, then)
    publish("call.control", call["route"], {"callId": call_id, **fields},
            reply_to="amq.rabbitmq.reply-to", correlation_id=correlation_id)


def next_step(call_id):
    call = calls.get(call_id)
    if call and call["steps"]:
        fields, then = call["steps"].pop(0)
        command(call_id, then, **fields(call))


def on_reply(_channel, _method, properties, body):
    call_id, then = waiting.pop(properties.correlation_id, (None, None))
    reply = json.loads(body)
    if properties.type == "ClaimReply" or call_id is None:
        return
    if not reply["ok"]:
        print(f"FAILED {call_id} {reply['command']}: {reply['reason']} {reply['detail']}", flush=True)
        if reply["command"] != "hangup":
            command(call_id, command="hangup")  # give up: the adapter hangs up what we created
        return
    call = calls.get(call_id)
    if call is not None and then is not None:
        then(call, reply)
        next_step(call_id)


def start(started):
    call_id, caller = started["callId"], started["channelId"]
    calls[call_id] = {"route": started["route"], "caller": caller, "callee": None, "bridge": None, "steps": [
        (lambda c: {"command": "createChannel", "endpoint": endpoint}, lambda c, r: c.update(callee=r["channelId"])),
        (lambda c: {"command": "createBridge"}, lambda c, r: c.update(bridge=r["bridgeId"])),
        (lambda c: {"command": "addChannel", "bridgeId": c["bridge"], "channelId": c["caller"]}, lambda c, r: None),
        (lambda c: {"command": "addChannel", "bridgeId": c["bridge"], "channelId": c["callee"]}, lambda c, r: None),
        (lambda c: {"command": "dial", "channelId": c["callee"], "timeout": 30}, lambda c, r: None),
    ]}
    next_step(call_id)


def on_message(_channel, _method, properties, body):
    message = json.loads(body)
    kind = properties.type
    if kind == "CallBroadcast":
        publish("call.claims", "", {"callId": message["callId"], "app": app, "control": True},
                reply_to="amq.rabbitmq.reply-to", correlation_id=str(uuid.uuid4()))
    elif kind == "CallControlStarted":
        start(message)
    elif kind == "CallControlEnded":
        calls.pop(message["callId"], None)
        print(f"ENDED {message['callId']} reason={message['reason']}", flush=True)
    elif message.get("callId") in calls:
        call_id = message["callId"]
        call = calls[call_id]
        if kind == "Dial" and message["channelId"] == call["callee"]:
            if message["dialStatus"] == "ANSWER":
                command(call_id, lambda c, r: print(f"BRIDGED {call_id} caller={c['caller']} callee={c['callee']}", flush=True),
                        command="answer", channelId=call["caller"])
            elif message["dialStatus"] not in ("", "RINGING", "PROGRESS"):
                print(f"NO-ANSWER {call_id} {message['dialStatus']}", flush=True)
                command(call_id, command="hangup", channelId=call["caller"])
        elif kind == "ChannelHangupRequest" and message["channelId"] == call["callee"]:
            command(call_id, command="hangup", channelId=call["caller"])  # the callee left: so does the caller


channel.basic_consume("amq.rabbitmq.reply-to", on_reply, auto_ack=True)
channel.basic_consume(queue, on_message, auto_ack=True)

running = True


def stop(_signal, _frame):
    global running
    running = False


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)

print(f"{app}: bridge-dial to {endpoint}, listening on {queue}", flush=True)
next_heartbeat = 0.0
while running:
    if time.monotonic() >= next_heartbeat:
        publish("app.heartbeats", "", {"app": app})
        next_heartbeat = time.monotonic() + 1
    connection.process_data_events(time_limit=0.2)

publish("app.heartbeats", "", {"app": app, "status": "stopping"})
connection.close()
