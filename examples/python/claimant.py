#!/usr/bin/python3
"""A claimant for the call broadcast router, using pika and the README's wire contract only.

Usage: /usr/bin/python3 claimant.py NAME [CONTEXT,EXTENSION,PRIORITY]   (or APP_NAME / APP_TARGET in the environment)
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
target_text = sys.argv[2] if len(sys.argv) > 2 else env.get("APP_TARGET")
if not app:
    sys.exit("usage: claimant.py NAME [CONTEXT,EXTENSION,PRIORITY]")
target = None
if target_text:
    context, extension, priority = (target_text.split(",") + ["s", "1"])[:3]
    target = {"context": context, "extension": extension, "priority": int(priority)}
user = env.get("RABBITMQ_USER", "guest")

connection = pika.BlockingConnection(pika.ConnectionParameters(
    host=env.get("RABBITMQ_HOST", "localhost"),
    port=int(env.get("RABBITMQ_PORT", "5672")),
    virtual_host=env.get("RABBITMQ_VHOST", "/"),
    credentials=pika.PlainCredentials(user, env.get("RABBITMQ_PASSWORD", "guest")),
))
channel = connection.channel()
# The exchanges belong to the router's side (infra/broker-definitions.sh, or the router and adapter as they start): an
# app only checks they exist (a passive declare); an app user may not declare them.
for exchange in ("call.broadcasts", "call.claims", "app.heartbeats"):
    channel.exchange_declare(exchange, passive=True)
queue = f"app.{app}"
channel.queue_declare(queue, durable=True)
channel.queue_bind(queue, "call.broadcasts", routing_key=app)


def publish(exchange, message, **properties):
    # user_id: RabbitMQ checks it is the user we connected as.
    channel.basic_publish(exchange, "", json.dumps(message),
                          pika.BasicProperties(content_type="application/json", user_id=user, **properties))


def heartbeat(status=None):
    publish("app.heartbeats", {"app": app, "status": status} if status else {"app": app})


pending = {}  # correlation_id -> the broadcast we claimed


def on_reply(_channel, _method, properties, body):
    broadcast = pending.pop(properties.correlation_id, None)
    if broadcast is None:
        return
    reply = json.loads(body)
    if reply["accepted"]:
        print(f"WON {reply['callId']} channel={broadcast['channelId']} caller={broadcast['callerNumber']}", flush=True)
    else:
        print(f"LOST {reply['callId']} reason={reply['reason']} winner={reply['winner'] or ''}", flush=True)


def on_broadcast(_channel, _method, properties, body):
    if properties.type != "CallBroadcast":
        return  # CallClaimed notices (notify=yes)
    broadcast = json.loads(body)
    correlation_id = str(uuid.uuid4())
    pending[correlation_id] = broadcast
    claim = {"callId": broadcast["callId"], "app": app}
    if target:
        claim["target"] = target
    publish("call.claims", claim, reply_to="amq.rabbitmq.reply-to", correlation_id=correlation_id)


# Direct reply-to: answers come back on this channel, matched to our claims by correlation_id.
channel.basic_consume("amq.rabbitmq.reply-to", on_reply, auto_ack=True)
channel.basic_consume(queue, on_broadcast, auto_ack=True)

running = True


def stop(_signal, _frame):
    global running
    running = False


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)

print(f"{app}: listening on {queue}", flush=True)
next_heartbeat = 0.0
while running:
    if time.monotonic() >= next_heartbeat:
        heartbeat()
        next_heartbeat = time.monotonic() + 1
    connection.process_data_events(time_limit=0.2)

heartbeat("stopping")
connection.close()
