"""The sample persona shipped with twin (twin/sample/result.json), and how it is made.

Kostya Vetrov is fictional, written for this project: a 29-year-old barista in
St Petersburg who plays bass in an amateur band and lives with a cat called Pelmen.
He writes in lowercase, without final full stops, in bursts of short messages, with
his own fillers ("короче", "ну такое", "жиза", "база"; "ngl", "tbh", "lol"), Russian
")))" smiles, 🙃 and 🤙, and running jokes: Grisha the espresso machine that keeps
breaking, the cat that steals things, the gym he will start "on Monday".

The scenes below are the authored material. `build()` composes them into eight months
of chats (a fixed seed, so the file is reproducible; tests/dataset/test_persona.py checks that
the shipped file is exactly what this writes). Dialogue format: `<` the other person,
`>` Kostya; consecutive lines of one speaker are separate messages of a burst;
`{slot}` is filled from the chat's slot lists; `[photo] text`, `[sticker 😂]` and
`[voice]` make media messages.

    python -m tests.persona twin/sample/result.json
"""

from __future__ import annotations

import json
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

OWNER = (700100200, "Костя Ветров")
TZ = timezone(timedelta(hours=3))  # Moscow time, as the exporting computer's clock
START = datetime(2026, 2, 2, tzinfo=TZ)
DAYS = 240

SLOTS_RU = {
    "food": ["гречку", "борщ", "макароны", "омлет", "плов", "шаурму", "пельмени"],
    "stolen": ["носок", "колбасу", "наушники", "ручку", "сыр", "резинку для волос"],
    "day": ["субботу", "воскресенье", "пятницу", "среду", "четверг"],
    "time": ["16", "18", "19", "20", "21"],
    "dish": ["пирожки", "голубцы", "оливье", "блины", "котлеты"],
    "city": ["Турцию", "Грузию", "Казань", "Сочи", "Калининград"],
    "gift": ["новый спиннинг", "часы", "кофемолку", "книгу про рыбалку"],
    "team": ["Зенит", "Спартак", "ЦСКА", "Краснодар"],
    "amount": ["500", "1000", "2к", "3к"],
    "plan": ["на дачу", "в баню", "на шашлыки", "в боулинг", "на залив"],
    "milk": ["кокосовом", "миндальном", "овсяном", "безлактозном"],
    "coffee": ["Эфиопия", "Кения", "Колумбия", "Гватемала"],
    "place": ["базе", "точке на Лиговском", "старой базе на Васильевском"],
    "bar": ["Подвал 42", "Сквот", "Бар Ветер", "Клуб Лампа"],
    "phone": ["+7 921 555-13-07", "8 (911) 555-42-18", "+7 (931) 555 27 64", "89215550199"],
}
SLOTS_EN = {
    "stolen": ["socks", "sausage", "headphones", "cheese", "charger cable"],
    "day": ["friday", "saturday", "sunday", "wednesday"],
    "time": ["11pm", "10pm", "9pm", "midnight"],
    "month": ["june", "july", "august", "september"],
    "gift": ["a coffee grinder", "a nice scarf", "a spa day", "a fancy teapot"],
    "team": ["zenit", "spartak", "benfica", "porto"],
    "bar": ["Podval 42", "Skvot", "Bar Veter"],
    "email": ["kostya.vetrov@mailbox.example", "k.vetrov.bass@postbox.example"],
    "iban": ["DE89 3704 0044 0532 0130 00", "GB82 WEST 1234 5698 7654 32"],
    "phone": ["+351 912 555 018", "+351 935 555 447"],
    "card": ["4539 1488 0343 6467", "5555 5555 5555 4444"],
}

MOM = """
< Костя, доброе утро! Ты поел?
> доброе
> да мам, поел
> {food} )))
< Молодец. Не забудь шапку, сегодня холодно
> ну мам
> мне 29 🙃
< Хоть 50. Шапку надень!
> ладно ладно
===
< Позвони бабушке, у неё сегодня давление
> ок, наберу после смены
> а что случилось?
< Да ничего страшного, просто скучает
> понял, вечером позвоню 🤙
===
< Как там Пельмень?
> спит на моей куртке
> как обычно
> короче он вчера опять украл {stolen} со стола
> ахахах
< Ты его кормишь нормально?
> мам он ест больше меня)))
===
< Когда приедешь к нам?
> ну в {day} может
> если смену не поставят
< Я {dish} сделаю
> о, тогда точно приеду ахах
===
< Запиши телефон сантехника, который нам кран чинил: {phone}
> ок, записал
> спасибо мам
< Он хороший, не обманывает
> ну норм тогда
===
< Ты видел, что Тима написал?
> неа
> а что там
< Он в {city} едет в отпуск
> ну норм
> пусть привезёт мне что-нибудь 🙃
===
< Сынок, как работа?
> норм
> Гриша опять сломался
> ну кофемашина
< Бедный Гриша)
> бедный я, я его весь день чинил ахах
===
< Костя, ты деньги за квартиру заплатил?
> да мам
> всё заплатил
> не переживай ☕️
< Хорошо. Я просто спросила
===
< С днём рождения папу не забудь поздравить!
> да помню я
> уже подарок купил
> {gift}
< Ой, он обрадуется
===
< Ты почему трубку не берёшь?
> я на репетиции был
> не слышал
> щас наберу
< Жду
===
> мам привет
> а где у нас лежит рецепт твоих {dish}
< В синей тетради, на кухне. Я тебе сфотографирую
< [photo] Вот
> спасибо)))
> попробую сам сделать
< Только соли не много!
===
< Костя, ты не заболел? Голос был грустный
> не, всё норм
> просто не выспался
> Пельмень в 5 утра орал
< Ложись пораньше сегодня
> ок мам 🤙
===
< Папа спрашивает, поедешь с ним {plan}?
> ну хз
> если в {day} то го
> ну в смысле да
< Хорошо, я ему скажу
"""

SASHA = """
< здарова
< го пиво в {day}?
> здарова
> го
> только я до {time} работаю
< норм, я подожду
> база 🤙
===
< ты видел вчерашний матч?
> неа
> я спал как Пельмень
> короче кто выиграл
< {team} 2:1
> ну такое
> я так и знал)))
===
< [photo] смотри что нашёл
> ахахахах
> жиза
> это ж я в понедельник утром
===
< бро можешь {amount} до пятницы скинуть?
> ну ща гляну
> ок, скинул
< спасибо брат, верну
> да забей 🙃
===
< как там твой Гриша
> короче
> Гриша опять умер
> третий раз за неделю
> я уже с ним разговариваю как с человеком
< ахаха
< может ему отпуск нужен
> мне нужен отпуск ахах
===
< ты в спортзал так и не пошёл?
> с понедельника начну
> честно
< ты это говоришь с января
> ну такое
> зато я морально готов 🙃
===
< в выходные {plan}?
> ну хз
> если Лёша репу не назначит то го
< давай
> договорились 🤙
===
< слушай а как у тебя с той девушкой из кофейни
> с какой
> а
> ну типа норм
> в кино позвал
< оооо
< красавчик
> ну посмотрим)))
===
< короче меня начальник опять бесит, сказал что надо выходить в субботу а я вообще-то планировал на дачу
> жиза
> пошли его
> ну не прям пошли
> но типа вежливо
< ахах ладно попробую
===
< [sticker 😂]
> ахахах
> [sticker 🙃]
===
> саня
> ты живой?
< живой)
< работы много
> понял
> выходи на связь как разгребёшь 🤙
===
< ты на концерт в {day} идёшь?
> какой
< ну который я кидал
> а
> ваще забыл
> го, если билеты ещё есть
< есть, я возьму
> база
===
< бро скинь номер карты, я долг верну
> {card}
> только не спеши
< уже кинул
> пришло, спасибо 🤙
"""

ANYA = """
< Костя, ты завтра работаешь?
> ага
> с {time}
< Можешь поменяться со мной на {day}?
> ну давай
> только тогда ты закрываешь кассу 🙃
< договорились!
===
< Гриша опять не греет
> ну кто бы сомневался
> короче выключи и включи
> и по боку стукни
> слева
< помогло 😂
> я же говорю
> у нас с ним связь
===
< у нас закончилось овсяное молоко
> блин
> там в подсобке вроде было
> на верхней полке
< нашла, спасибо!
===
< тут клиент спрашивает можно ли капучино на {milk} без сахара но с сиропом
> ахахах
> можно
> нам всё можно
> ну типа
===
< ты видел новое расписание?
> неа
> скинь
< [photo] вот
> ну такое
> опять три утренних подряд
> ладно жиза
===
< можешь мне скинуть номер поставщика зерна?
> щас
> {phone}
> это Олег, он норм
< спасибо!
===
< Костя, я разбила кружку...
> какую
< с котиком
> ну всё
> это была моя любимая
> шучу, забей 🙃
===
< какой сегодня сорт в фильтре?
> {coffee}
> кислотненький такой
> как я люблю ☕️
===
< во сколько ты сегодня?
> к {time}
> если автобус не подведёт)))
===
> ань
> ты ключи от подсобки не брала?
< ой
< кажется они у меня в кармане
> ахах
> ну норм, завтра занесёшь
===
< а как правильно латте-арт делать, у меня всё время клякса
> короче
> молоко не перегревай
> и лей с высоты сначала
> потом ближе
> ну и практика, у меня тоже год клякса была)))
< спасибо, попробую!
"""

LYOSHA = """
< репа в {day} в {time}, не забудь
> ок
> а где
< на {place}
> понял, буду 🤙
===
< короче репу отменяем, Вика заболела
> блин
> ну ладно
> тогда я дома на басу поиграю
> Пельмень будет слушателем)))
===
< ты струны купил?
> неа
> забыл
> завтра куплю честно
< ты говорил это вчера
> ну такое
> завтра точно 🙃
===
< нас позвали играть в {bar} в {day}!
> ооо
> база
> а сколько песен
< штук 8
> норм
> го тогда в четверг репу
===
< послушал запись вчерашнюю?
> да
> короче я во второй песне накосячил
> на припеве
< да норм вроде
> не норм)))
> переиграем
===
< у тебя есть кабель лишний?
> есть
> один рабочий
> и один который работает если его не трогать ахах
< давай первый
===
< [voice]
> ахах
> норм рифф
> запиши ещё раз без кота на фоне 🙃
===
< как назовём новую песню?
> "Гриша"
> в честь кофемашины
< ахахах
< а что, норм
> база
===
> лёх
> я тут басовую партию придумал
> [voice]
< огонь!
< на репе покажешь
> ок 🤙
===
< ты в {day} можешь? надо барабаны перевезти
> ну могу
> после {time}
< спасибо бро
> да без проблем
"""

JONAS = """
< hey man! how's it going?
> heyy
> all good
> tired tbh
> coffee machine broke again lol
< haha the famous Grisha?
> yeaaah
> grisha never changes 🙃
===
< are you still coming to berlin in {month}?
> yes!!
> if i get the days off
> ngl i'm super excited
< nice, you can crash at mine
> thanks mate 🤙
===
< did you listen to that album i sent?
> yeah
> the third track is insane
> the bass line omg
< right??
> gonna steal it for our band lol
===
< what's your email? want to send you the tickets
> {email}
> thx!!
< sent
===
< how's pelmen doing
> he's fat and happy
> stole my {stolen} yesterday
> lol
< hahaha legend
===
< do you know any good bars in petersburg? my friend is going there
> ohh yes
> {bar} is nice
> tell him to say hi from me lol
< will do!
===
< i started running btw
> no way
> respect
> i'll start on monday 🙃
< you said that last month
> ngl true
> one day
===
< what time is it there?
> like {time}
> just finished work
> dead tired lol
===
> jonas
> look what pelmen did
> [photo]
< omg
< is that your bass case??
> yeaaah
> he lives there now 🙃
===
< we played our first gig yesterday!
> whaaat
> congrats man!!
> how was it
< chaotic but fun
> that's the best kind tbh 🤙
"""

MARIA = """
< Hi Konstantin, just a reminder that rent is due on Friday.
> hi maria
> yes i remember
> will send it thursday
< Thank you!
===
< Here are the bank details for the transfer: {iban}
> got it
> thanks
> done, sent
===
< Is the boiler working now? The plumber said he fixed it.
> yes
> hot water is back
> finally lol
< Great, sorry for the trouble.
> no worries
===
< The neighbours said there was loud music on Saturday?
> ohh
> sorry
> it was just bass practice
> i'll use headphones 🙃
< Please, thank you.
===
< I'd like to come by on {day} to check the windows, is that ok?
> sure
> i'm home after 6
< Perfect.
> the cat will say hi lol
===
< Konstantin, is everything ok with the flat?
> yes all good
> the kitchen tap is a bit leaky tbh
< I will send someone next week.
> thanks!!
"""

TIM = """
< йо
< как дела
> йо
> норм
> работаю как обычно
> ты как там в лиссабоне
< жарко)
> завидую 🙃
===
< yo bro, mom's birthday is coming, what are we getting her?
> hmm
> maybe {gift}?
> or a trip somewhere
< trip sounds good
> ok let's split it
===
< скинь фотку Пельменя
> [photo]
> вот
> жирный как всегда
< ахаха красавец
===
< did you see the game?
> nope
> was at rehearsal
> who won
< {team}
> ну такое lol
===
< когда к маме поедешь?
> в субботу наверное
> а что
< передай ей посылку, я отправил на твой адрес
> ок, заберу 🤙
===
< my number changed btw: {phone}
> ok saved
> 🤙
===
> тим
> мама спрашивает когда ты прилетишь
< в {month} наверное
< билеты дорогие пипец
> жиза
> ну хоть на пару дней 🙃
"""

GROUP = """
< Лёша: всем привет, репа в субботу в 19
< Вика: я буду
> я тоже
> 🤙
===
< Вика: кто забыл медиатор на базе?
> я)))
> заберу в субботу
"""

# (title, peer id, scenes, conversations, hours of the day they start in, slots)
CHATS = [
    ("Мама", 700100301, MOM, 64, (9, 22), SLOTS_RU),
    ("Саня Белов", 700100302, SASHA, 60, (18, 24), SLOTS_RU),
    ("Аня Кофейня", 700100303, ANYA, 50, (7, 21), SLOTS_RU),
    ("Лёша Барабаны", 700100304, LYOSHA, 44, (12, 23), SLOTS_RU),
    ("Jonas Weber", 700100305, JONAS, 42, (15, 24), SLOTS_EN),
    ("Maria Santos", 700100306, MARIA, 20, (10, 20), SLOTS_EN),
    ("Тима", 700100307, TIM, 36, (12, 23), SLOTS_EN | {"month": ["июле", "августе", "сентябре"]}),
]


def parse_scenes(text: str) -> list[list[tuple[str, str]]]:
    scenes = []
    for block in text.strip().split("==="):
        lines = [line for line in block.strip().splitlines() if line.strip()]
        scenes.append([(line[0], line[2:]) for line in lines])
    return scenes


def _fill(text: str, slots: dict[str, list[str]], rng: random.Random) -> str:
    for name, choices in slots.items():
        while "{" + name + "}" in text:
            text = text.replace("{" + name + "}", rng.choice(choices), 1)
    return text


class _Chat:
    def __init__(self, peer: tuple[int, str]) -> None:
        self.peer = peer
        self.messages: list[dict[str, Any]] = []

    def add(self, when: datetime, sender: tuple[int, str], line: str) -> None:
        message: dict[str, Any] = {
            "id": len(self.messages) + 1,
            "type": "message",
            "date": when.strftime("%Y-%m-%dT%H:%M:%S"),
            "date_unixtime": str(int(when.timestamp())),
            "from": sender[1],
            "from_id": f"user{sender[0]}",
        }
        text = line
        if line.startswith("[sticker "):
            message.update(
                file="(File not included. Change data exporting settings to download.)",
                file_size=24576,
                media_type="sticker",
                sticker_emoji=line[len("[sticker ") : -1],
                width=512,
                height=512,
            )
            text = ""
        elif line.startswith("[photo]"):
            message.update(
                photo="(File not included. Change data exporting settings to download.)",
                photo_file_size=183_000,
                width=1280,
                height=960,
            )
            text = line[len("[photo]") :].strip()
        elif line.startswith("[voice]"):
            message.update(
                file="(File not included. Change data exporting settings to download.)",
                file_size=41_000,
                media_type="voice_message",
                mime_type="audio/ogg",
                duration_seconds=12,
            )
            text = ""
        message["text"] = text
        message["text_entities"] = [{"type": "plain", "text": text}] if text else []
        self.messages.append(message)


def _session(
    chat: _Chat,
    scenes: list[list[tuple[str, str]]],
    start: datetime,
    slots: dict,
    rng: random.Random,
) -> None:
    when = start
    previous = None
    for scene in rng.sample(scenes, k=rng.choices([1, 2, 3], weights=[4, 4, 2])[0]):
        for speaker, line in scene:
            sender = OWNER if speaker == ">" else chat.peer
            if previous is None:
                pass
            elif speaker == previous:
                when += timedelta(seconds=rng.randint(3, 25))  # a burst
            else:
                when += timedelta(seconds=rng.randint(20, 600))
            previous = speaker
            chat.add(when, sender, _fill(line, slots, rng))
        when += timedelta(minutes=rng.randint(2, 40))


def _chat_messages(
    peer: tuple[int, str],
    text: str,
    sessions: int,
    hours: tuple[int, int],
    slots: dict,
    rng: random.Random,
) -> list[dict[str, Any]]:
    scenes = parse_scenes(text)
    days = sorted(rng.sample(range(DAYS), k=sessions))
    chat = _Chat(peer)
    for day in days:
        hour = rng.randint(hours[0], hours[1] - 1)
        start = START + timedelta(days=day, hours=hour, minutes=rng.randint(0, 59))
        _session(chat, scenes, start, slots, rng)
    return chat.messages


def _group_messages(rng: random.Random) -> list[dict[str, Any]]:
    members = {"Лёша": (700100304, "Лёша Барабаны"), "Вика": (700100308, "Вика Клавиши")}
    chat = _Chat(members["Лёша"])
    for day in sorted(rng.sample(range(DAYS), k=12)):
        when = START + timedelta(days=day, hours=19)
        for scene in rng.sample(parse_scenes(GROUP), k=1):
            for speaker, line in scene:
                when += timedelta(seconds=rng.randint(20, 300))
                if speaker == ">":
                    chat.add(when, OWNER, line)
                else:
                    name, _, said = line.partition(": ")
                    chat.add(when, members[name], said)
    return chat.messages


def build(seed: int = 29) -> dict[str, Any]:
    rng = random.Random(seed)
    chats = []
    for title, peer_id, scenes, sessions, hours, slots in CHATS:
        messages = _chat_messages((peer_id, title), scenes, sessions, hours, slots, rng)
        chats.append({"name": title, "type": "personal_chat", "id": peer_id, "messages": messages})
    group = _group_messages(rng)
    chats.append(
        {"name": "Сквозняк (группа)", "type": "private_group", "id": 880001, "messages": group}
    )
    bot = _Chat((990001, "CoffeeOrdersBot"))
    bot.add(START + timedelta(days=3, hours=9), OWNER, "/start")
    bot.add(
        START + timedelta(days=3, hours=9, seconds=1),
        (990001, "CoffeeOrdersBot"),
        "Hi! Send me your order.",
    )
    chats.append(
        {"name": "CoffeeOrdersBot", "type": "bot_chat", "id": 990001, "messages": bot.messages}
    )
    saved = _Chat(OWNER)
    for day, note in [
        (10, "купить струны"),
        (40, "идея для песни: кот который ворует носки"),
        (90, "записаться в спортзал (с понедельника)"),
    ]:
        saved.add(START + timedelta(days=day, hours=23), OWNER, note)
    chats.append({"type": "saved_messages", "id": OWNER[0], "messages": saved.messages})
    return {
        "about": "Here is the data you requested. (A fictional persona written for twin.)",
        "personal_information": {
            "user_id": OWNER[0],
            "first_name": "Костя",
            "last_name": "Ветров",
            "phone_number": "+7 900 555 0000",
            "username": "@kostya_bass",
            "bio": "кофе, бас, кот",
        },
        "chats": {"about": "This page lists all chats from this export.", "list": chats},
    }


def write(path: Path) -> None:
    text = json.dumps(build(), ensure_ascii=False, indent=1) + "\n"
    Path(path).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    write(Path(sys.argv[1]))
